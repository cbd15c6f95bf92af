"""entropy.MAX_WIDTH: the widest fixed-width code is checked where codes are packed and unpacked."""

import numpy as np
import pytest

from compress_engine.core import entropy as E


@pytest.mark.parametrize("bits", [0, E.MAX_WIDTH + 1, 24])
def test_a_width_past_max_width_is_refused_not_read_as_other_bits(bits):
    """pack_fixed and unpack_fixed read 24-bit windows, so they are right up to MAX_WIDTH (17) bits a symbol; nothing
    checked it (MAX_WIDTH was unused): an 18-bit alphabet packed and unpacked to other numbers without a word."""
    vals = np.array([(1 << min(bits, 20)) - 1, 5, 0, 3], np.int64)
    with pytest.raises(ValueError, match=str(E.MAX_WIDTH)):
        E.pack_fixed(vals, bits)
    with pytest.raises(E.CorruptStream, match=str(E.MAX_WIDTH)):
        E.unpack_fixed(bytes((len(vals) * bits + 7) // 8), len(vals), bits)
    assert np.array_equal(E.unpack_fixed(E.pack_fixed(vals[1:], E.MAX_WIDTH), 3, E.MAX_WIDTH), vals[1:])
