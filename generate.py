"""Sample a trained generator without the dataset: grids, latent walks and latent arithmetic; a
conditional one by class (--class) or attributes (--attributes)."""
import os
import textwrap

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import numpy as np  # noqa: E402
from absl import app  # noqa: E402

import conditions  # noqa: E402
import config  # noqa: E402
import errors  # noqa: E402
from errors import UsageError  # noqa: E402
import files  # noqa: E402
import utils  # noqa: E402

# the picture formats matplotlib writes that a grid is asked in
OUTPUT_TYPES = ('.png', '.jpg', '.jpeg', '.pdf', '.svg')


def show_grid(images, rows, cols, path, title, labels=None):
    """Save uint8 images [rows*cols, H, W, C] as a titled picture grid, optionally labelling each
    tile; the title is wrapped to the grid's width."""
    plt = utils.pyplot()
    images = np.asarray(images)
    grid = utils.make_grid(images, rows, cols)
    h, w = images.shape[1:3]
    scale = max(1.0, 96.0 / max(h, w))  # tiles at least ~1 inch at 96 dpi
    width, height = grid.shape[1] * scale / 96, grid.shape[0] * scale / 96
    # about 11-point characters of 0.09 inch: as many as fit on a line, at least 30
    lines = textwrap.wrap(title, max(30, int(width / 0.09)))
    top = 0.2 + 0.2 * len(lines)
    fig = plt.figure(figsize=(max(width, 3.0), height + top), dpi=96)
    ax = fig.add_axes([0, 0, 1, height / (height + top)])
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap='gray', vmin=0, vmax=255,
              interpolation='nearest')
    ax.axis('off')
    for i, label in enumerate(labels or []):
        r, c = divmod(i, cols)
        ax.text(2 + c * (w + 2) + 1, 2 + r * (h + 2) + 1, label, color='yellow', fontsize=8,
                va='top', ha='left', bbox=dict(facecolor='black', alpha=0.5, pad=1, linewidth=0))
    fig.text(0.5, 1 - 0.1 / (height + top), '\n'.join(lines), fontsize=11, ha='center',
             va='top')
    with files.saving('the picture', path) as tmp, files.open_file(tmp, 'wb') as f:
        fig.savefig(f, format=os.path.splitext(path)[1][1:].lower().replace('jpg', 'jpeg'))
    plt.close(fig)


def slerp(z0, z1, t):
    """Spherical interpolation between latents z0 and z1 at fractions t (DCGAN-style latent walks)."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    cos = np.dot(z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: fall back to a straight line
        out = (1 - t) * z0 + t * z1
    else:
        out = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
    out[0], out[-1] = z0, z1  # the endpoints are exactly the given latents
    return out.astype(np.float32)


def parse_arithmetic(expression, n_samples):
    """'A-B+C' with comma-separated sample indices per group -> three index lists (B may be empty)."""
    try:
        a_part, rest = expression.split('-', 1)
        b_part, c_part = rest.split('+', 1)
        groups = [[int(i) for i in part.split(',') if i.strip()] for part in (a_part, b_part, c_part)]
    except ValueError:
        raise UsageError('--arithmetic={} is not A-B+C with comma-separated sample indices, e.g. '
                         '--arithmetic=3,7,12-1,4,9+0,5,6'.format(expression))
    if not groups[0] or not groups[2]:
        raise UsageError('--arithmetic={}: groups A and C need at least one index each.'.format(
            expression))
    bad = [i for g in groups for i in g if not 0 <= i < n_samples]
    if bad:
        raise UsageError('--arithmetic={}: indices {} are outside the grid of {} samples (0 to {}); '
                         'use the indices shown on the grid made with the same --seed.'.format(
                             expression, bad, n_samples, n_samples - 1))
    if len(groups[0]) - len(groups[1]) + len(groups[2]) <= 0:
        raise UsageError('--arithmetic={}: B has more samples than A and C together.'.format(
            expression))
    return groups


def arithmetic_latents(z, groups):
    """Latent means of A, B and C and their combination (sum A - sum B + sum C) / (|A|-|B|+|C|).

    For groups of equal size, as in the DCGAN paper, this is mean(A) - mean(B) + mean(C).
    """
    a, b, c = [z[g] for g in groups]
    means = [g.mean(axis=0) if len(g) else np.zeros(z.shape[1], z.dtype) for g in (a, b, c)]
    result = (a.sum(0) - b.sum(0) + c.sum(0)) / (len(a) - len(b) + len(c))
    return np.stack(means + [result]).astype(np.float32)


def generate(generator, latents, vectors=None):
    """uint8 images [N, H, W, C] from latents [N, noise_dim] (and a conditional generator's
    condition vectors [N, C])."""
    import model
    return utils.to_uint8(model.apply(generator, np.asarray(latents, np.float32),
                                      None if vectors is None else np.asarray(vectors, np.float32)))


class Asked:
    """What a conditional generator is asked to draw: condition (its conditions.Condition, None
    for an unconditional one), class_name (--class: one, or two to walk between) and attributes
    (--attributes)."""

    def __init__(self, condition=None, class_name='', attributes=''):
        self.condition, self.attributes, self.classes = condition, attributes, []
        if condition is None:
            return
        self.classes = [condition.parse_class(n.strip()) for n in class_name.split(',')
                        if n.strip()]
        if attributes:
            condition.parse_attributes(attributes, 1, 0)  # a wrong name is refused now
        if len(self.classes) > 2 or (self.classes and attributes):
            raise UsageError('--class={} --attributes={}: give one class (two with '
                             '--interpolate) or the attributes.'.format(class_name, attributes))

    def vectors(self, count, seed):
        """count condition vectors of --class or --attributes (None: not asked, or unconditional)."""
        if self.condition is None or not (self.classes or self.attributes):
            return None
        if self.attributes:
            return self.condition.parse_attributes(self.attributes, count, seed)
        return self.condition.vectors(np.full(count, self.classes[0]))

    def title(self):
        """What was asked, for the picture's title."""
        if self.condition is None:
            return ''
        if self.attributes:
            return ', attributes {}'.format(self.attributes)
        return ', class {}'.format(' to '.join(self.condition.names[i] for i in self.classes)) \
            if self.classes else ', a row per class'


def draw(generator, rows, cols, seed, interpolate=False, steps=8, arithmetic='', asked=None):
    """One call's images and latents, with its grid shape, title and tile labels; asked: what a
    conditional generator draws (an Asked)."""
    asked = asked or Asked()
    noise_dim = generator.inputs[0].shape[-1]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows * cols, noise_dim)).astype(np.float32)
    chosen = asked.vectors(rows * cols, seed)
    by_class = asked.condition is not None and chosen is None  # a row per class
    if len(asked.classes) == 2 and not interpolate:
        raise UsageError('two classes ({}) walk from one to the other only with --interpolate; '
                         'otherwise give one.'.format(
                             ','.join(asked.condition.names[i] for i in asked.classes)))
    if interpolate:
        ends = rng.standard_normal((rows, 2, noise_dim)).astype(np.float32)
        t = np.linspace(0.0, 1.0, steps)
        if len(asked.classes) == 2:
            # each row: one latent, the condition moving from the first class to the second
            latents = np.repeat(ends[:, 0], steps, axis=0).reshape(rows, steps, noise_dim)
            a, b = asked.condition.vectors(np.array(asked.classes))
            vectors = np.tile((1 - t)[:, None] * a + t[:, None] * b, (rows, 1))
            kind = 'walks from one class to the other at fixed latents'
        else:
            latents = np.stack([slerp(a, b, t) for a, b in ends])
            vectors = None if asked.condition is None else (
                np.repeat(asked.condition.vectors(np.arange(rows) % asked.condition.size), steps,
                          axis=0) if by_class else asked.vectors(rows * steps, seed))
            kind = 'spherical interpolations'
        images = generate(generator, latents.reshape(-1, noise_dim), vectors)
        return images, latents, (rows, steps), '{} {}, seed {}{}'.format(
            rows, kind, seed, asked.title()), None
    if arithmetic:
        if by_class:
            raise UsageError('--arithmetic with a conditional generator needs the --class (or '
                             '--attributes) of its samples, e.g. --class={}.'.format(
                                 asked.condition.names[0]))
        groups = parse_arithmetic(arithmetic, len(z))
        latents = arithmetic_latents(z, groups)
        images = generate(generator, latents, None if chosen is None else chosen[:4])
        if not groups[1]:
            images[1] = 0  # no B: an empty panel
        return images, latents, (1, 4), 'seed {}: A {} - B {} + C {}{}'.format(
            seed, *groups, asked.title()), ['A', '- B', '+ C', '= result']
    if by_class:  # the same latents in the row of every class
        rows_of = asked.condition.combinations()
        latents = np.tile(z[:cols], (len(rows_of), 1))
        images = generate(generator, latents, np.repeat(rows_of, cols, axis=0))
        names = asked.condition.row_names(rows_of)
        return images, latents, (len(rows_of), cols), 'seed {}{}'.format(
            seed, asked.title()), [names[i // cols] if i % cols == 0 else ''
                                   for i in range(len(latents))]
    return generate(generator, z, chosen), z, (rows, cols), 'samples, seed {}{} (indices for ' \
        '--arithmetic)'.format(seed, asked.title()), [str(i) for i in range(len(z))]


@errors.entry_point
def main(_argv):
    run(config.from_flags(config.SampleConfig), config.given(config.SHAPE_FLAGS))


def run(settings, given=None):
    """Draw the picture a config.SampleConfig asks for. given: the shape flags the user passed
    (None: all of settings')."""
    if not settings.model:
        raise UsageError('pass --model=models/{SaveName}/generator.keras')
    files.check_output_file(settings.out, OUTPUT_TYPES)
    # TensorFlow (5 s) loads here, after the checks above: a mistake is answered at once
    import dataset
    import model
    generator = model.load_generator(settings.model, dataset.channels(settings.ImageType),
                                     settings.DisInSize, settings.noise_dim, settings.filters,
                                     given=given,
                                     arch=settings.arch, conditioning=settings.conditioning)
    condition = conditions.load(settings.model) if model.is_conditional(generator) else None
    if condition is None and (settings.class_name or settings.attributes):
        raise UsageError('--model {} is not a conditional generator (it takes noise alone): drop '
                         '--class and --attributes, or pass the generator.keras of a run trained '
                         'with --conditional.'.format(settings.model))
    asked = Asked(condition, settings.class_name, settings.attributes)
    name = os.path.basename(os.path.dirname(files.absolute(settings.model)))
    images, latents, (rows, cols), title, labels = draw(
        generator, settings.rows, settings.cols, settings.seed, settings.interpolate,
        settings.steps, settings.arithmetic, asked)
    show_grid(images, rows, cols, settings.out, '{}: {}'.format(name, title), labels)
    print('wrote {}'.format(settings.out))
    if settings.save_latents:
        path = os.path.splitext(settings.out)[0] + '.npy'
        with files.saving('the latents', path) as tmp, files.open_file(tmp, 'wb') as f:
            np.save(f, latents)
        print('wrote {}'.format(path))


if __name__ == '__main__':
    # flags defined when run, not when imported: evaluate.py's --out and generate.py's differ,
    # and one process (a test) may import both
    config.define_flags(config.SampleConfig, __name__)
    app.run(main)
