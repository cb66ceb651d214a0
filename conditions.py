"""What a conditional run conditions on: one class of N (digits, MNIST, CIFAR-10, a folder's
subfolders) or a set of on/off attributes (CelebA's), its vector form [N, C] that the networks
take (a one-hot row for a class, 0/1 values for attributes), the draws that samples and
evaluations use, what --class and --attributes name, and the conditions.json beside a generator.
Without TensorFlow: generate.py answers a wrong name before it loads."""
import dataclasses
import itertools
import json
import os

import numpy as np

import files
from errors import UsageError

CLASS, ATTRIBUTES = 'class', 'attributes'
FILE = 'conditions.json'  # beside every generator.keras of a conditional run
# the classes of CIFAR-10's labels 0 to 9
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
                   'truck')
# the most rows a sample grid or real.png shows (a class or an attribute combination each)
MAX_ROWS = 16


@dataclasses.dataclass(frozen=True)
class Condition:
    """The labels a conditional generator takes: kind CLASS (names: the N classes, the condition
    a one-hot row [N]) or ATTRIBUTES (names: the attributes, the condition 0/1 per attribute)."""
    kind: str
    names: tuple

    @property
    def size(self):
        """C, the width of the condition vectors."""
        return len(self.names)

    def vectors(self, labels):
        """float32 [N, C] condition vectors of class indices [N] or 0/1 attribute rows [N, C]."""
        labels = np.asarray(labels)
        if self.kind == CLASS:
            return np.eye(self.size, dtype=np.float32)[labels.astype(np.int64)]
        return labels.astype(np.float32)

    def combinations(self):
        """One condition per grid row: every class, or attribute combinations (all off, each
        alone, then more at once), at most MAX_ROWS."""
        if self.kind == CLASS:
            return self.vectors(np.arange(min(self.size, MAX_ROWS)))
        rows = [c for n in range(self.size + 1)
                for c in itertools.combinations(range(self.size), n)][:MAX_ROWS]
        out = np.zeros((len(rows), self.size), np.float32)
        for i, on in enumerate(rows):
            out[i, list(on)] = 1
        return out

    def row_names(self, vectors):
        """A short name per condition vector: its class, or its attributes on ('none')."""
        if self.kind == CLASS:
            return [self.names[i] for i in np.argmax(vectors, axis=1)]
        return ['+'.join(n for n, v in zip(self.names, row) if v > 0.5) or 'none'
                for row in vectors]

    def balanced(self, count):
        """count condition vectors, as many of each class (or attribute combination) as can be:
        row i is combination i mod their number (evaluations and standing statistics)."""
        if self.kind == CLASS:
            return self.vectors(np.arange(count) % self.size)
        bits = (np.arange(count)[:, None] >> np.arange(self.size)[None]) & 1
        return bits.astype(np.float32)

    def parse_class(self, text):
        """The class index that --class names (a name, or an index 0 to N-1)."""
        if self.kind != CLASS:
            raise UsageError('--class={}: this generator is conditioned on the attributes {}, not '
                             'on classes: use --attributes, e.g. --attributes={},-{}.'.format(
                                 text, ', '.join(self.names), self.names[0], self.names[-1]))
        if text in self.names:
            return self.names.index(text)
        if text.isdigit() and int(text) < self.size:
            return int(text)
        raise UsageError('--class={} is not one of its classes: {} (or their index, 0 to '
                         '{}).'.format(text, ', '.join(self.names), self.size - 1))

    def parse_attributes(self, text, count, seed):
        """count condition vectors of --attributes=Male,-Smiling: the attributes named on, those
        with a - off, the others drawn at random (seeded) per image."""
        if self.kind != ATTRIBUTES:
            raise UsageError('--attributes={}: this generator is conditioned on classes ({}), not '
                             'attributes: use --class.'.format(text, ', '.join(self.names)))
        vectors = (np.random.default_rng(seed).random((count, self.size)) < 0.5).astype(
            np.float32)
        for item in (t.strip() for t in text.split(',') if t.strip()):
            name = item.lstrip('+-')
            if name not in self.names:
                raise UsageError('--attributes: {} is not one of its attributes: {} (a - before '
                                 'one turns it off).'.format(name, ', '.join(self.names)))
            vectors[:, self.names.index(name)] = 0.0 if item.startswith('-') else 1.0
        return vectors

    def save(self, folder):
        """Write conditions.json into folder (beside a generator.keras), completely or not at all."""
        files.write_json(os.path.join(folder, FILE), dict(
            kind=self.kind, names=list(self.names),
            input=('condition: float32 [N, {}], a one-hot row per image (the class index {})'
                   .format(self.size, 'of names') if self.kind == CLASS else
                   'condition: float32 [N, {}], 1 where the attribute of names is on, else 0'
                   .format(self.size))), 'the conditions')


def class_names(image_type, count, folder_labels=None):
    """The names of a dataset's classes: digits' and MNIST's '0' to '9', CIFAR-10's, or a
    converted folder's subfolders ({name: label} from its manifest; '.' for pictures at the top)."""
    if image_type == 'cifar10':
        return CIFAR10_CLASSES
    if folder_labels is not None:
        by_label = {label: name or '.' for name, label in folder_labels.items()}
        return tuple(by_label[i] for i in range(len(by_label)))
    return tuple(str(i) for i in range(count))


def attribute_condition(attributes, known):
    """The ATTRIBUTES condition of --attributes (names among known, CelebA's 40)."""
    unknown = [a for a in attributes if a not in known]
    if unknown or not attributes:
        raise UsageError('--attributes={}: {}; CelebA\'s attributes are {}.'.format(
            ','.join(attributes), 'give at least one, e.g. Male,Smiling,Eyeglasses'
            if not attributes else '{} {} not among them'.format(
                ', '.join(unknown), 'is' if len(unknown) == 1 else 'are'), ', '.join(known)))
    if len(set(attributes)) != len(attributes):
        raise UsageError('--attributes={} names one twice.'.format(','.join(attributes)))
    return Condition(ATTRIBUTES, tuple(attributes))


def load(model_path):
    """The Condition of a saved generator: its conditions.json beside it, else None (an
    unconditional generator)."""
    path = os.path.join(os.path.dirname(files.absolute(model_path)), FILE)
    if not files.isfile(path):
        return None
    try:
        with files.open_file(path) as f:
            saved = json.load(f)
        condition = Condition(saved['kind'], tuple(saved['names']))
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise UsageError('{} is not the conditions file of a conditional run ({}): copy it again '
                         'from the run\'s models/{{SaveName}}/ folder.'.format(path, e))
    if condition.kind not in (CLASS, ATTRIBUTES) or not condition.names:
        raise UsageError('{} names no classes or attributes: copy it again from the run\'s '
                         'models/{{SaveName}}/ folder.'.format(path))
    return condition
