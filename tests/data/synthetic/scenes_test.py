import pytest

from vsa_tf.data import synthetic
from vsa_tf.data.synthetic import scenes


def _plan(**settings):
    values = {"seed": 3, "counts": {"train": 8, "val": 4, "test": 4}, "heldout": [("red", "circle")],
              "twin_fraction": 0.5, "min_side": 48, "max_side": 64, "max_objects": 3, "heldout_share": 1.0}
    values.update(settings)
    return scenes.plan_world(**values)


def test_spatial_relation():
    assert synthetic.spatial_relation([0, 0, 10, 10], [20, 2, 30, 12]) == "left"
    assert synthetic.spatial_relation([20, 2, 30, 12], [0, 0, 10, 10]) == "right"
    assert synthetic.spatial_relation([0, 0, 10, 10], [2, 30, 12, 40]) == "above"
    assert synthetic.spatial_relation([2, 30, 12, 40], [0, 0, 10, 10]) == "below"
    assert synthetic.spatial_relation([0, 0, 10, 10], [12, 12, 22, 22]) is None


def test_relation_holds():
    assert synthetic.relation_holds("next_to", [0, 0, 10, 10], [20, 2, 30, 12])
    assert synthetic.relation_holds("left", [0, 0, 10, 10], [20, 2, 30, 12])
    assert not synthetic.relation_holds("above", [0, 0, 10, 10], [20, 2, 30, 12])
    with pytest.raises(ValueError, match="received 'inside'"):
        synthetic.relation_holds("inside", [0, 0, 10, 10], [20, 2, 30, 12])


def test_split_sizes():
    assert scenes.split_sizes(10, None, (0.7, 0.1, 0.2)) == {"train": 7, "val": 1, "test": 2}
    assert scenes.split_sizes(None, {"train": 6, "test": 3}, (1, 1, 1)) == {"train": 6, "val": 0, "test": 3}
    assert scenes.split_sizes(5, (3, 1, 1), (1, 1, 1)) == {"train": 3, "val": 1, "test": 1}
    with pytest.raises(ValueError, match=r"received \['dev'\]"):
        scenes.split_sizes(None, {"dev": 3}, (1, 1, 1))
    with pytest.raises(ValueError, match="add up to 5"):
        scenes.split_sizes(6, (3, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="received 0"):
        scenes.split_sizes(0, None, (1, 1, 1))


def test_heldout_pairs():
    given = [("red", "circle"), {"color": "blue", "shape": "star"}, ("red", "circle")]
    assert scenes.heldout_pairs(given, 0, 3) == [("red", "circle"), ("blue", "star")]
    chosen = scenes.heldout_pairs(None, 0, 3)
    assert chosen == [("purple", "circle"), ("red", "star"), ("orange", "cross")]
    with pytest.raises(ValueError, match="received 9"):
        scenes.heldout_pairs(None, 0, 9)


def test_plan_is_deterministic_and_keeps_heldout_pairs_out_of_train():
    plan = _plan()
    assert plan == _plan()
    assert [item["split"] for item in plan] == ["train"] * 8 + ["val"] * 4 + ["test"] * 4
    for item in plan:
        scene = item["scene"]
        assert scene["width"] != scene["height"] and 48 <= min(scene["width"], scene["height"])
        pairs = {(obj["color"], obj["shape"]) for obj in scene["objects"]}
        assert (("red", "circle") in pairs) == (item["split"] != "train")  # heldout_share=1 forces it in


def test_twins_keep_the_layout_and_exchange_colours():
    plan = _plan()
    twins = [(index, item["twin"]) for index, item in enumerate(plan) if item["twin"] is not None]
    assert len(twins) == 2 * (2 + 1 + 1)  # round(count * twin_fraction / 2) pairs per split
    for index, other in twins:
        first, second = plan[index]["scene"]["objects"], plan[other]["scene"]["objects"]
        assert plan[other]["twin"] == index and plan[index]["sentence_index"] == plan[other]["sentence_index"]
        assert [(obj["box"], obj["shape"], obj["size"]) for obj in first] == [
            (obj["box"], obj["shape"], obj["size"]) for obj in second
        ]
        assert sorted(obj["color"] for obj in first) == sorted(obj["color"] for obj in second)
        assert [obj["color"] for obj in first] != [obj["color"] for obj in second]


def test_objects_do_not_overlap():
    for item in _plan():
        boxes = [obj["box"] for obj in item["scene"]["objects"]]
        for position, box in enumerate(boxes):
            for other in boxes[position + 1 :]:
                assert box[2] <= other[0] or other[2] <= box[0] or box[3] <= other[1] or other[3] <= box[1]
