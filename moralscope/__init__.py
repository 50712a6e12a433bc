"""moralscope: batch evaluation of moral self-correction in language models.

The SDK (``Client``, ``AsyncClient``) imports only ``schemas`` and light dependencies.
"""
