"""plot_logs.py and generate.py: plots, GIF, sample grids, latent walks and arithmetic."""
import os

import numpy as np
import pytest
from PIL import Image

import csv_log
from errors import UsageError
import generate
from helpers import error_line, run_script, train_in_process
import model
from plot_logs import plot_logs

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('tools')


@pytest.fixture(scope='session')
def trained(mnist_npz, tmp_path_factory):
    """A 3-epoch MNIST run: loss CSV, three grids, generator.keras and weights."""
    folder = tmp_path_factory.mktemp('trained')
    train_in_process(folder, ImageType='MNIST', mnist_path=mnist_npz, epochs=3, steps_per_epoch=1,
                     seed=2)
    return str(folder)


@pytest.fixture(scope='session')
def G(trained):
    return model.load_generator(os.path.join(trained, 'models', 'MNIST-False',
                                                'generator.keras'), 1, 32, 100)


def png(path):
    with Image.open(path) as img:
        assert img.format == 'PNG'
        return img.size


def test_plot_logs_single_run_and_gif(trained, tmp_path):
    written = plot_logs([os.path.join(trained, 'logs', 'MNIST-False-loss.csv')], str(tmp_path),
                        gif=True, plot_path=os.path.join(trained, 'plot'))
    assert [os.path.basename(p) for p in written] == [
        'MNIST-False-losses.png', 'MNIST-False-probabilities.png', 'MNIST-False.gif']
    assert png(written[0]) == png(written[1]) == (900, 500)
    with Image.open(written[2]) as gif:
        assert gif.format == 'GIF' and gif.n_frames == 3
        assert gif.size == (276, 276 + 24)  # 138-pixel grids, enlarged 2x, plus the label band


def test_plot_logs_overlays_runs(trained, tmp_path):
    other = tmp_path / 'other-loss.csv'
    other.write_text(csv_log.CSV_HEADER + '    0,0.5,0.5,0.7,1.4\n    1,0.6,0.4,0.9,1.2\n')
    written = plot_logs([os.path.join(trained, 'logs', 'MNIST-False-loss.csv'), str(other)],
                        str(tmp_path / 'p'))
    assert written[0] == str(tmp_path / 'p' / 'comparison-losses.png')
    assert png(written[0]) == (900, 500)


def test_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / 'run-loss.csv'
    path.write_text(csv_log.CSV_HEADER + '    0,0.600000,0.400000,0.900000,1.200000\n    1,0.61')
    table = csv_log.read_loss_csv(str(path))
    assert list(table['epoch']) == [0] and table['Dis_loss'][0] == 1.2
    assert png(plot_logs([str(path)], str(tmp_path))[0]) == (900, 500)


@pytest.mark.parametrize('content,message', [
    (None, 'does not exist: pass a loss CSV'),
    ('', 'is empty: it has no header'),
    ('step,loss\n1,2\n', 'has header "step,loss", expected "epoch,Real_P,Fake_P,Gen_loss,Dis_loss"'),
    (csv_log.CSV_HEADER, 'has no complete rows yet'),
    (csv_log.CSV_HEADER + '    0,0.5,abc,0.7,1.4\n', 'line 2 is not a row of 5 numbers'),
])
def test_plot_logs_bad_csv(tmp_path, content, message):
    path = tmp_path / 'bad-loss.csv'
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as error:
        plot_logs([str(path)], str(tmp_path))
    assert message in str(error.value)


def test_gif_without_grids(trained, tmp_path):
    with pytest.raises(UsageError, match='no sample grids in nowhere/MNIST-False'):
        plot_logs([os.path.join(trained, 'logs', 'MNIST-False-loss.csv')], str(tmp_path),
                  gif=True, plot_path='nowhere')


def test_grid_latents_are_seeded(G):
    images, latents, shape, _, labels = generate.draw(G, 2, 3, seed=7)
    assert images.shape == (6, 32, 32, 1) and images.dtype == np.uint8 and shape == (2, 3)
    np.testing.assert_array_equal(latents, np.random.default_rng(7).standard_normal(
        (6, 100)).astype(np.float32))
    assert labels == [str(i) for i in range(6)]
    np.testing.assert_array_equal(images, generate.generate(G, latents))


def test_interpolation_rows_run_between_the_drawn_endpoints(G):
    images, latents, shape, _, _ = generate.draw(G, 2, 4, seed=3, interpolate=True, steps=5)
    assert latents.shape == (2, 5, 100) and images.shape == (10, 32, 32, 1) and shape == (2, 5)
    rng = np.random.default_rng(3)
    rng.standard_normal((2 * 4, 100))  # the sample grid's latents (rows x cols) come first
    ends = rng.standard_normal((2, 2, 100)).astype(np.float32)
    np.testing.assert_array_equal(latents[:, 0], ends[:, 0])
    np.testing.assert_array_equal(latents[:, -1], ends[:, 1])
    # the first and last tile of each row are the generator's images of the endpoints
    for row in range(2):
        np.testing.assert_array_equal(images[row * 5], generate.generate(G, ends[row, :1])[0])
        np.testing.assert_array_equal(images[row * 5 + 4], generate.generate(G, ends[row, 1:])[0])
    # the walk stays on the sphere between the endpoints' norms
    norms = np.linalg.norm(latents, axis=-1)
    assert np.all(norms >= norms[:, [0, -1]].min(1, keepdims=True) - 1e-3)


def test_arithmetic_a_equal_c_b_empty_gives_a_mean(G):
    z = np.random.default_rng(0).standard_normal((16, 100)).astype(np.float32)
    groups = generate.parse_arithmetic('2,5,9-+2,5,9', 16)
    assert groups == [[2, 5, 9], [], [2, 5, 9]]
    mean_a, mean_b, mean_c, result = generate.arithmetic_latents(z, groups)
    np.testing.assert_allclose(result, z[[2, 5, 9]].mean(0), atol=1e-6)
    assert not mean_b.any()
    # with equal group sizes it is the paper's mean(A) - mean(B) + mean(C)
    _, _, _, paper = generate.arithmetic_latents(z, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(paper, z[[1, 2]].mean(0) - z[[3, 4]].mean(0) + z[[5, 6]].mean(0),
                               atol=1e-6)
    images, latents, shape, _, labels = generate.draw(G, 4, 4, seed=0, arithmetic='2,5,9-+2,5,9')
    assert shape == (1, 4) and labels[-1] == '= result'
    assert not images[1].any()  # no B: an empty panel
    np.testing.assert_array_equal(images[3], images[0])  # A - nothing + A, averaged, is A's mean


def test_generate_from_weights_file(trained, G):
    weights = os.path.join(trained, 'models', 'MNIST-False', 'Generator.weights.h5')
    from_weights = model.load_generator(weights, 1, 32, 100, filters=128)
    z = np.random.default_rng(1).standard_normal((3, 100))
    np.testing.assert_array_equal(generate.generate(from_weights, z), generate.generate(G, z))
    # another size, the seed's width, or pytorch/examples' networks
    for size, filters, arch in ((64, 128, 'seed'), (32, 1024, 'seed'), (32, 128, 'dcgan')):
        with pytest.raises(UsageError, match='pass the --ImageType, --DisInSize, --noise_dim, '
                           '--filters, --arch, --conditional and --conditioning of its training '
                           'run'):
            model.load_generator(weights, 1, size, 100, filters, arch=arch)


def test_generate_bad_input(G):
    with pytest.raises(UsageError, match='--model nope.keras does not exist'):
        model.load_generator('nope.keras', 1, 32, 100)
    with pytest.raises(UsageError, match='is not A-B\\+C with comma-separated sample indices'):
        generate.draw(G, 4, 4, 0, arithmetic='1,2+3')
    with pytest.raises(UsageError, match=r'indices \[40\] are outside the grid of 16 samples'):
        generate.draw(G, 4, 4, 0, arithmetic='1-2+40')
    with pytest.raises(UsageError, match='groups A and C need at least one index'):
        generate.parse_arithmetic('-1+2', 16)


# ----------------------------------------------------------------------------- as a process

@pytest.mark.slow
def test_generate_cli_writes_grid_and_latents(trained):
    model = os.path.join('models', 'MNIST-False', 'generator.keras')
    result = run_script('generate.py', ['--model=' + model, '--out=out/grid.png', '--rows=2',
                                        '--cols=3', '--seed=7', '--save_latents'], trained)
    assert result.returncode == 0, result.stderr
    width, height = png(os.path.join(trained, 'out', 'grid.png'))
    assert width > 3 * 32 and height > 2 * 32
    assert np.load(os.path.join(trained, 'out', 'grid.npy')).shape == (6, 100)
    assert 'pass --model=' in error_line(run_script('generate.py', [], trained))


@pytest.mark.slow
def test_plot_logs_cli_writes_beside_the_grids(trained):
    result = run_script('plot_logs.py', ['logs/MNIST-False-loss.csv', '--gif'], trained)
    assert result.returncode == 0, result.stderr
    # the default --out_dir is main.py's --PLOT_PATH default, plot/
    for name in ('MNIST-False-losses.png', 'MNIST-False-probabilities.png', 'MNIST-False.gif'):
        assert os.path.isfile(os.path.join(trained, 'plot', name))
