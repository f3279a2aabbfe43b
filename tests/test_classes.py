"""Class lists (utils/classes.py): classes.txt, raw id -> class index and back, the one id lookup."""

from __future__ import annotations

import numpy as np
import pytest

from utils.classes import ORIGINAL_CLASSES, ClassList, lookup, read_classes
from utils.cli import UserError


def test_read_classes(tmp_path):
    (tmp_path / "classes.txt").write_text("0|unknown\n1|sugar beet\nlines without a bar are ignored\n5|rape\n"
                                          "26|maize\n")
    classes = read_classes(tmp_path)
    assert classes.ids == (0, 1, 5, 26)
    assert classes.names == ("unknown", "sugar beet", "rape", "maize")
    assert classes.num_classes == 3
    assert classes.folder_names == ["1_sugar_beet", "2_rape", "3_maize"]
    hostile = ClassList((0, 1, 2), ("unknown", "x/../../../../escape", "oat\\summer: früh"))
    assert hostile.folder_names == ["1_x_.._.._.._.._escape", "2_oat_summer__früh"]
    np.testing.assert_array_equal(classes.to_index([[0, 1, 5], [26, 7, -3]]), [[0, 1, 2], [3, 0, 0]])
    assert classes.to_index([5]).dtype == np.int32
    np.testing.assert_array_equal(classes.to_raw([[3, 0], [2, 1]]), [[26, 0], [5, 1]])
    with pytest.raises(ValueError, match="outside 0..3"):
        classes.to_raw([4])


@pytest.mark.parametrize(("text", "message"), [
    ("0|unknown\nbeet|sugar beet\n", ":2: class id 'beet' is not an integer"),
    ("0|unknown\n1|a\n\n1|b\n", ":4: class id 1 is listed twice"),
    ("0|unknown\n1|a|b\n", ":2: expected 'id|name', got '1|a|b'"),
    ("1|sugar beet\n0|unknown\n", ": the first class must be raw id 0 (unknown), got 1"),
    ("unknown\n", ": no 'id|name' lines"),
])
def test_classes_errors(tmp_path, text, message):
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(UserError) as info:
        read_classes(tmp_path)
    assert str(info.value) == f"{tmp_path / 'classes.txt'}{message}"


def test_the_one_lookup_maps_ids_through_a_table_and_gives_missing_for_the_rest():
    ids = np.array([[26, 6, 0], [1, -3, 26]])
    np.testing.assert_array_equal(lookup([0, 1, 26], [10, 11, 12], ids, missing=-1), [[12, -1, 10], [11, -1, 12]])
    np.testing.assert_array_equal(lookup([5, 3], [1, 2], [3, 5, 4]), [2, 1, 0])  # keys in any order


def test_the_original_classes_are_the_17_crops_of_the_paper_and_unknown():
    assert ORIGINAL_CLASSES.num_classes == 17 and ORIGINAL_CLASSES.ids[:4] == (0, 1, 2, 3)
    assert ORIGINAL_CLASSES.names[-1] == "maize" and ORIGINAL_CLASSES.to_index([26, 6]).tolist() == [17, 0]
    assert ORIGINAL_CLASSES.text().splitlines()[:2] == ["0|unknown", "1|sugar beet"]
