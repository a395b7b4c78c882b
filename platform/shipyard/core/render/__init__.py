"""Pure renderers: a Plan and Diagnostics in, text out. No I/O."""
