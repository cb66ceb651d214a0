"""Sample a trained generator without the dataset: grids, latent walks and latent arithmetic."""
import os
import textwrap

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import numpy as np  # noqa: E402
from absl import app  # noqa: E402

import config  # noqa: E402
import errors  # noqa: E402
from errors import UsageError  # noqa: E402
import files  # noqa: E402
import utils  # noqa: E402

# the picture formats matplotlib writes that a grid is asked in
OUTPUT_TYPES = ('.png', '.jpg', '.jpeg', '.pdf', '.svg')

config.define_flags(config.SampleConfig, __name__)


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
    with files.saving('the picture', path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1][1:].lower().replace('jpg', 'jpeg'))
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


def generate(generator, latents):
    """uint8 images [N, H, W, C] from latents [N, noise_dim]."""
    return utils.to_uint8(generator(np.asarray(latents, np.float32), training=False))


def draw(generator, rows, cols, seed, interpolate=False, steps=8, arithmetic=''):
    """One call's images and latents, with its grid shape, title and tile labels."""
    noise_dim = generator.inputs[0].shape[-1]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows * cols, noise_dim)).astype(np.float32)
    if interpolate:
        ends = rng.standard_normal((rows, 2, noise_dim)).astype(np.float32)
        t = np.linspace(0.0, 1.0, steps)
        latents = np.stack([slerp(a, b, t) for a, b in ends])
        images = generate(generator, latents.reshape(-1, noise_dim))
        return images, latents, (rows, steps), '{} spherical interpolations, seed {}'.format(
            rows, seed), None
    if arithmetic:
        groups = parse_arithmetic(arithmetic, len(z))
        latents = arithmetic_latents(z, groups)
        images = generate(generator, latents)
        if not groups[1]:
            images[1] = 0  # no B: an empty panel
        return images, latents, (1, 4), 'seed {}: A {} - B {} + C {}'.format(seed, *groups), \
            ['A', '- B', '+ C', '= result']
    return generate(generator, z), z, (rows, cols), 'samples, seed {} (indices for ' \
        '--arithmetic)'.format(seed), [str(i) for i in range(len(z))]


@errors.entry_point
def main(_argv):
    settings = config.from_flags(config.SampleConfig)
    if not settings.model:
        raise UsageError('pass --model=models/{SaveName}/generator.keras')
    files.check_output_file(settings.out, OUTPUT_TYPES)
    # TensorFlow (5 s) loads here, after the checks above: a mistake is answered at once
    import dataset
    import model
    generator = model.load_generator(settings.model, dataset.channels(settings.ImageType),
                                     settings.DisInSize, settings.noise_dim, settings.filters,
                                     given=config.given(config.SHAPE_FLAGS),
                                     arch=settings.arch)
    name = os.path.basename(os.path.dirname(os.path.abspath(settings.model)))
    images, latents, (rows, cols), title, labels = draw(
        generator, settings.rows, settings.cols, settings.seed, settings.interpolate,
        settings.steps, settings.arithmetic)
    show_grid(images, rows, cols, settings.out, '{}: {}'.format(name, title), labels)
    print('wrote {}'.format(settings.out))
    if settings.save_latents:
        path = os.path.splitext(settings.out)[0] + '.npy'
        with files.saving('the latents', path) as tmp, open(tmp, 'wb') as f:
            np.save(f, latents)
        print('wrote {}'.format(path))


if __name__ == '__main__':
    app.run(main)
