"""Where ``nearnb/__init__.py`` finds ``compare`` and ``Comparison`` until it names
:mod:`nearnb.comparing` (the module is not called ``compare``: importing a submodule
of that name would rebind ``nearnb.compare`` from the function to the module).

Remove this file once ``nearnb._EXPORTS`` maps both names to ``nearnb.comparing``.
"""

from .comparing import Comparison, compare

__all__ = ["Comparison", "compare"]
