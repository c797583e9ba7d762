"""The one in-memory form of every dataset: CaptionDataset of ImageRecords of Sentences."""

import collections
import dataclasses
import typing

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(slots=True)
class Sentence:
    """One caption (slotted: a COCO-sized dataset holds 600,000 of them).

    Attributes:
        tokens: lowercased alphanumeric words (the paper's preprocessing).
        raw: the caption as written in the source file ("" when only tokens were given).
    """

    tokens: typing.List[str]
    raw: str = ""

    @property
    def text(self):
        """The tokens joined by single spaces."""
        return " ".join(self.tokens)


@dataclasses.dataclass(slots=True)
class ImageRecord:
    """One image and its captions (slotted, as `Sentence`).

    Attributes:
        filename: path of the image relative to the dataset's image root (COCO: "val2014/x.jpg").
        image_id: integer id, unique within the dataset.
        split: "train", "val" or "test".
        sentences: the image's captions.
    """

    filename: str
    image_id: int
    split: str
    sentences: typing.List[Sentence] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CaptionDataset:
    """A dataset of images with captions, whatever file format it came from.

    Attributes:
        records: every image, in file order.
        name: a short name for summaries ("flickr8k", "synthetic", ...).
    """

    records: typing.List[ImageRecord]
    name: str = "dataset"

    def split(self, split):
        """The records of one split, in file order."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
        return [record for record in self.records if record.split == split]

    def sentence_counts(self):
        """{split: (number of images, number of sentences)}."""
        counts = collections.OrderedDict((split, [0, 0]) for split in SPLITS)
        for record in self.records:
            counts.setdefault(record.split, [0, 0])
            counts[record.split][0] += 1
            counts[record.split][1] += len(record.sentences)
        return {split: tuple(value) for split, value in counts.items()}

    def by_filename(self):
        """{filename: record}."""
        return {record.filename: record for record in self.records}
