"""Sample a trained generator without the dataset: grids, latent walks and latent arithmetic."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import model  # noqa: E402
import utils  # noqa: E402
from utils import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('model', '', 'generator.keras written by main.py, or a Generator.weights.h5 '
                    'file together with --ImageType and --DisInSize')
flags.DEFINE_enum('ImageType', 'MNIST', ['img_celeba', 'img_align_celeba', 'img_align_celeba_png',
                                         'MNIST'], 'with a .weights.h5 file: MNIST (1 channel) or '
                  'a CelebA type (3 channels) (default MNIST)')
flags.DEFINE_integer('DisInSize', 64, 'with a .weights.h5 file: image side, 32, 64 or 128 (default 64)')
flags.DEFINE_integer('noise_dim', 100, 'with a .weights.h5 file: latent size (default 100)')
flags.DEFINE_string('out', 'samples.png', 'output PNG (default samples.png)')
flags.DEFINE_integer('rows', 4, 'grid rows; with --interpolate, the number of walks (default 4)')
flags.DEFINE_integer('cols', 4, 'grid columns (default 4)')
flags.DEFINE_integer('seed', 0, 'random seed of the latents; the same seed gives the same grid '
                     '(default 0)')
flags.DEFINE_boolean('interpolate', False, 'rows of spherical interpolation between pairs of random '
                     'latents instead of a grid (default False)')
flags.DEFINE_integer('steps', 8, 'points per interpolation row, endpoints included (default 8)')
flags.DEFINE_string('arithmetic', '', 'A-B+C: comma-separated sample indices of the --seed grid per '
                    'group, e.g. 3,7,12-1,4,9+0,5,6; B may be empty')
flags.DEFINE_boolean('save_latents', False, 'also write the latents drawn to {out}.npy (default False)')


def load_generator(path, image_type, image_size, noise_dim):
    """A generator from generator.keras, or from a .weights.h5 file and the flags that shape it."""
    if not os.path.isfile(path):
        raise UsageError('--model {} does not exist: pass models/{{SaveName}}/generator.keras (or '
                         'Generator.weights.h5) from a training run.'.format(path))
    try:
        if path.endswith('.weights.h5'):
            generator = model.Gen_Net(1 if image_type == 'MNIST' else 3, noise_dim, image_size)
            generator.load_weights(path)
            return generator
        return keras.models.load_model(path, compile=False)
    except (ValueError, OSError) as e:
        raise UsageError('cannot load {} ({}): with a .weights.h5 file pass the --ImageType, '
                         '--DisInSize and --noise_dim of its training run.'.format(
                             path, str(e).splitlines()[0][:200]))


def generate(generator, latents):
    """uint8 images [N, H, W, C] from latents [N, noise_dim]."""
    return utils.to_uint8(generator(np.asarray(latents, np.float32), training=False))


def main(_argv):
    try:
        if not FLAGS.model:
            raise UsageError('pass --model=models/{SaveName}/generator.keras')
        if FLAGS.rows < 1 or FLAGS.cols < 1 or FLAGS.steps < 2:
            raise UsageError('--rows and --cols must be at least 1 and --steps at least 2.')
        generator = load_generator(FLAGS.model, FLAGS.ImageType, FLAGS.DisInSize, FLAGS.noise_dim)
        noise_dim = generator.inputs[0].shape[-1]
        name = os.path.basename(os.path.dirname(os.path.abspath(FLAGS.model)))
        rng = np.random.default_rng(FLAGS.seed)
        z = rng.standard_normal((FLAGS.rows * FLAGS.cols, noise_dim)).astype(np.float32)
        out_dir = os.path.dirname(FLAGS.out) or '.'
        utils.check_writable(out_dir)
        if FLAGS.interpolate:
            ends = rng.standard_normal((FLAGS.rows, 2, noise_dim)).astype(np.float32)
            t = np.linspace(0.0, 1.0, FLAGS.steps)
            latents = np.stack([utils.slerp(a, b, t) for a, b in ends])
            images = generate(generator, latents.reshape(-1, noise_dim))
            utils.show_grid(images, FLAGS.rows, FLAGS.steps, FLAGS.out,
                            '{}: {} spherical interpolations, seed {}'.format(
                                name, FLAGS.rows, FLAGS.seed))
        elif FLAGS.arithmetic:
            groups = utils.parse_arithmetic(FLAGS.arithmetic, len(z))
            latents = utils.arithmetic_latents(z, groups)
            images = generate(generator, latents)
            if not groups[1]:
                images[1] = 0  # no B: an empty panel
            utils.show_grid(images, 1, 4, FLAGS.out, '{}, seed {}: A {} - B {} + C {}'.format(
                name, FLAGS.seed, *groups), ['A', '- B', '+ C', '= result'])
        else:
            latents = z
            utils.show_grid(generate(generator, z), FLAGS.rows, FLAGS.cols, FLAGS.out,
                            '{}: samples, seed {} (indices for --arithmetic)'.format(
                                name, FLAGS.seed), [str(i) for i in range(len(z))])
        print('wrote {}'.format(FLAGS.out))
        if FLAGS.save_latents:
            np.save(os.path.splitext(FLAGS.out)[0] + '.npy', latents)
            print('wrote {}'.format(os.path.splitext(FLAGS.out)[0] + '.npy'))
    except UsageError as e:
        utils.fail(e)


if __name__ == '__main__':
    app.run(main)
