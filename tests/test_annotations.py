"""Annotation readers, ground-truth rasterisation and id lists (synthetic cases + the real refdata files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avslkit.data.annotations import (
    boxes_to_gt_map,
    detect_format,
    gt_map,
    gt_maps,
    normalize_clip_id,
    read_annotations,
    read_extended_csv,
    read_id_list,
)
from avslkit.errors import AvslError
from avslkit.evaluation import infer_types
from avslkit.metrics.localization import size_bucket


# -- ids ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("zpWuikVorYg_000032", "zpWuikVorYg_000032"),
        ("zpWuikVorYg_32", "zpWuikVorYg_000032"),
        ("zpWuikVorYg_32000_42000", "zpWuikVorYg_000032"),  # millisecond range
        ("/data/frames/zpWuikVorYg_000032.jpg", "zpWuikVorYg_000032"),
        ("-0BIyqJj9ZU_30.mp4", "-0BIyqJj9ZU_000030"),
        ("JIemsK_0lXc_000364", "JIemsK_0lXc_000364"),  # '_' inside the YouTube id
        ("a_b-c_d_e_f_5000_15000.wav", "a_b-c_d_e_f_000005"),
        ("10000130166", "10000130166"),  # Flickr ids unchanged
        ("2432219254.png", "2432219254"),
    ],
)
def test_normalize_clip_id(raw, canonical):
    assert normalize_clip_id(raw) == canonical


def test_read_id_list_crlf_no_final_newline(tmp_path):
    p = tmp_path / "list.csv"
    p.write_bytes(b"111,202\r\n222,0\r\n3908875357.png")
    assert read_id_list(p) == ["111", "222", "3908875350"]  # typo fixed
    assert read_id_list(p, fix_known_typos=False)[-1] == "3908875357"
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(AvslError, match="no clip ids"):
        read_id_list(empty)


# -- ground truth --------------------------------------------------------------------------------------
def test_union_gt_map():
    # [0, 0, .5, .25] → x2 = int(112.0) = 112, y2 = 56 → area 112·56 = 6272.
    assert boxes_to_gt_map(np.array([[0, 0, 0.5, 0.25]])).sum() == 6272
    # Two overlapping boxes: 112² + 112² − 56² = 21952; the union is binary.
    m = boxes_to_gt_map(np.array([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]))
    assert m.sum() == 21952 and set(np.unique(m)) == {0.0, 1.0}
    # Truncation, not rounding: int(224·0.3) = int(67.2) = 67 columns.
    assert boxes_to_gt_map(np.array([[0, 0, 0.3, 1.0]])).sum() == 67 * 224


def test_sentinel_boxes():
    # x2 = −2.88e16 clips to 0 → x1 = 88 > x2 = 0 → an empty map (as for MKC9LvRivTM_000030).
    assert boxes_to_gt_map(np.array([[0.396875, 0.6625, -2.88230376e16, 0.984375]])).sum() == 0
    # A sentinel x1 clips to 0 → the box starts at the left edge: 112 columns × 112 rows.
    assert boxes_to_gt_map(np.array([[-2.88e16, 0.5, 0.5, 1.0]])).sum() == 112 * 112


FLICKR_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>256</width><height>256</height></size>
  <object><bbox><name>a</name><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><bbox><name>b</name><xmin>64</xmin><ymin>64</ymin><xmax>192</xmax><ymax>192</ymax></bbox></object>
  <object><bbox><name>c</name><xmin>0</xmin><ymin>0</ymin><xmax>256</xmax><ymax>256</ymax></bbox></object>
</annotation>"""


def test_flickr_xml_consensus(tmp_path):
    d = tmp_path / "Annotations"
    d.mkdir()
    (d / "123.xml").write_text(FLICKR_XML.format(name="123"))
    assert detect_format(d) == "flickr"
    ann = read_annotations(d)
    e = ann["123"]
    np.testing.assert_array_equal(e.boxes, [[0, 0, 128, 128], [64, 64, 192, 192], [0, 0, 256, 256]])
    # floor(224·c/256): 128 → 112, 64 → 56, 192 → 168, 256 → 224. A = [0,112)², B = [56,168)², C = all.
    # Count/2 clipped at 1: C only → .5 (50176 − |A∪B| = 50176 − 21952 = 28224 px); in A∪B → 1 (21952 px).
    m = gt_map(e)
    assert set(np.unique(m)) == {0.5, 1.0}
    assert m.sum() == 0.5 * 28224 + 21952
    assert m[0, 0] == 1.0 and m[200, 200] == 0.5
    # --gt union on the same boxes: every pixel (C covers the image).
    assert gt_map(e, mode="union").sum() == 224 * 224


def test_vggss_json_and_errors(tmp_path):
    p = tmp_path / "ann.json"
    p.write_text(json.dumps([{"file": "abcdefghijk_000010", "class": "dog", "bbox": [[0, 0, 0.5, 0.25]]}]))
    ann = read_annotations(p)
    assert ann.format == "vggss" and ann.classes() == {"abcdefghijk_000010": "dog"}
    assert gt_map(ann["abcdefghijk_000010"]).sum() == 6272
    # consensus on a single box: 1/2 everywhere inside
    assert gt_map(ann["abcdefghijk_000010"], mode="consensus").sum() == 6272 / 2
    with pytest.raises(AvslError, match="not found"):
        read_annotations(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(AvslError, match="not valid JSON"):
        read_annotations(bad)


# -- the real benchmark files --------------------------------------------------------------------------
def test_real_vggss(refdata):
    meta = refdata / "SLAVC" / "metadata"
    ann = read_annotations(meta / "vggss.json")
    assert len(ann) == 5158
    ids = read_id_list(meta / "vggss_test.csv")
    assert len(ids) == 5158 and set(ids) == set(ann)
    maps = gt_maps([ann[i] for i in ids])
    area = maps.reshape(len(ids), -1).sum(axis=1)
    empty = sorted(i for i, a in zip(ids, area) if a == 0)
    assert empty == ["M1P1xla8rg0_000000", "MKC9LvRivTM_000030"]
    # Size buckets reproduce Table 1 of the SLAVC paper exactly (134 / 1796 / 1726 / 1502).
    b = size_bucket(area)
    assert [int((b == k).sum()) for k in ("small", "medium", "large", "huge")] == [134, 1796, 1726, 1502]


def test_real_flickr_lists(refdata):
    slavc = read_id_list(refdata / "SLAVC" / "metadata" / "flickr_test.csv")
    lvs = read_id_list(refdata / "EZ-VSL" / "metadata" / "flickr_test.csv")
    senocak = read_id_list(refdata / "learning_to_localize_sound_source" / "test_list.txt")
    assert len(slavc) == 250 and len(lvs) == 249
    assert set(slavc) - set(lvs) == {"3908875350"}
    assert set(senocak) == set(slavc)  # .png names and the 3908875357 typo handled


def test_real_extended_types(refdata):
    meta = refdata / "SLAVC" / "metadata"
    pairs = read_extended_csv(meta / "vggss_test_plus_silent.csv")
    assert len(pairs) == 5158 and all(p.label == "non-sounding" for p in pairs)
    counts = infer_types(pairs, read_annotations(meta / "vggss.json").classes()).counts()
    assert counts == {"real": 379, "easy": 3594, "hard": 1185}


def test_real_flickr_extended_with_class_list(refdata):
    # SLAVC's released Flickr extended CSV has no video == audio rows, so none of the paper's 42 real
    # negatives is identifiable; with ACL-SSL's pseudo classes the 250 mismatched pairs type as 245 / 5.
    from avslkit.data.annotations import read_class_list

    classes = read_class_list(refdata / "ACL-SSL" / "Flickr" / "metadata" / "flickr_test.csv")
    assert len(classes) == 250 and "3908875350" in classes
    pairs = read_extended_csv(refdata / "SLAVC" / "metadata" / "flickr_test_plus_silent.csv")
    assert infer_types(pairs, classes).counts() == {"real": 0, "easy": 245, "hard": 5}
