"""Serving on the local target: KServe model servers on 127.0.0.1 behind a router per deployment.

``server`` (one model version in KServe's ModelServer), ``router`` (the stable URL,
weighted split, counters), ``local`` (rolling replacement and canary over both),
``analysis`` (the canary verdict, pure), ``probe`` (requests a model accepts).
"""
