"""The ``hf`` engine (torch + transformers), one module per concern:

- :mod:`workers.hf.engine`: :class:`HFEngine`, its options and counters;
- :mod:`workers.hf.scoring` and :mod:`workers.hf.generation`: the two batch methods;
- :mod:`workers.hf.forward`: passes under a token budget, shared prefixes, the prefix cache's use;
- :mod:`workers.hf.passes`: the layout of one forward pass (segments, key sources);
- :mod:`workers.hf.attention`: the ``moralscope`` attention (exact and dense arithmetic);
- :mod:`workers.hf.invariant`: batch-invariant linear layers and SiLU;
- :mod:`workers.hf.prefix_cache`: the radix tree of cached keys and values.

Importing this package imports torch and transformers, not pydantic.
"""

from workers.hf.engine import HFEngine

__all__ = ["HFEngine"]
