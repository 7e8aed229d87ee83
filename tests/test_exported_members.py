"""tether's public surface: everything in __all__ exists, is sorted, and nothing public is left out."""

import tether


def test_all_is_sorted_and_complete():
    assert tether.__all__ == sorted(tether.__all__)
    public = {name for name in vars(tether) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(tether, name)).__name__ == "module"}
    assert set(tether.__all__) == public - modules
