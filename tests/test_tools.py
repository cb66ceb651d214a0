"""plot_logs.py and generate.py: plots, GIF, sample grids, latent walks and arithmetic."""
import os

import keras
import numpy as np
import pytest
from PIL import Image

import utils
from conftest import SMALL, error_line, run_script
from utils import UsageError


@pytest.fixture(scope='module')
def trained(mnist_npz, tmp_path_factory):
    """A 3-epoch MNIST run: loss CSV, three grids and generator.keras."""
    cwd = str(tmp_path_factory.mktemp('trained'))
    result = run_script('main.py', SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                            '--epochs=3', '--steps_per_epoch=1', '--seed=2'], cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def png(path):
    with Image.open(path) as img:
        assert img.format == 'PNG'
        return img.size


def test_plot_logs_single_run_and_gif(trained):
    result = run_script('plot_logs.py', ['logs/MNIST-False-loss.csv', '--gif'], trained)
    assert result.returncode == 0, result.stderr
    assert png(os.path.join(trained, 'plots', 'MNIST-False-losses.png')) == (900, 500)
    assert png(os.path.join(trained, 'plots', 'MNIST-False-probabilities.png')) == (900, 500)
    with Image.open(os.path.join(trained, 'plots', 'MNIST-False.gif')) as gif:
        assert gif.format == 'GIF' and gif.n_frames == 3
        assert gif.size == (276, 276 + 24)  # 138-pixel grids doubled, plus the label band


def test_plot_logs_overlays_runs(trained, tmp_path):
    other = tmp_path / 'other-loss.csv'
    other.write_text(utils.CSV_HEADER + '    0,0.5,0.5,0.7,1.4\n    1,0.6,0.4,0.9,1.2\n')
    result = run_script('plot_logs.py', [os.path.join(trained, 'logs', 'MNIST-False-loss.csv'),
                                         str(other), '--out_dir=' + str(tmp_path / 'p')],
                        str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert png(tmp_path / 'p' / 'comparison-losses.png') == (900, 500)


def test_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / 'run-loss.csv'
    path.write_text(utils.CSV_HEADER + '    0,0.600000,0.400000,0.900000,1.200000\n    1,0.61')
    table = utils.read_loss_csv(str(path))
    assert list(table['epoch']) == [0] and table['Dis_loss'][0] == 1.2
    result = run_script('plot_logs.py', [str(path)], str(tmp_path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('content,message', [
    (None, 'does not exist: pass a loss CSV'),
    ('', 'is empty: it has no header'),
    ('step,loss\n1,2\n', 'has header "step,loss", expected "epoch,Real_P,Fake_P,Gen_loss,Dis_loss"'),
    (utils.CSV_HEADER, 'has no complete rows yet'),
    (utils.CSV_HEADER + '    0,0.5,abc,0.7,1.4\n', 'line 2 is not a row of 5 numbers'),
])
def test_plot_logs_bad_csv(tmp_path, content, message):
    path = tmp_path / 'bad-loss.csv'
    if content is not None:
        path.write_text(content)
    assert message in error_line(run_script('plot_logs.py', [str(path)], str(tmp_path)))


def test_gif_without_grids(trained, tmp_path):
    line = error_line(run_script('plot_logs.py', [os.path.join(trained, 'logs', 'MNIST-False-loss.csv'),
                                                  '--gif', '--PLOT_PATH=nowhere'], str(tmp_path)))
    assert 'no sample grids in nowhere/MNIST-False' in line


def test_generate_grid_and_latents(trained):
    model = os.path.join('models', 'MNIST-False', 'generator.keras')
    result = run_script('generate.py', ['--model=' + model, '--out=out/grid.png', '--rows=2',
                                        '--cols=3', '--seed=7', '--save_latents'], trained)
    assert result.returncode == 0, result.stderr
    width, height = png(os.path.join(trained, 'out', 'grid.png'))
    assert width > 3 * 32 and height > 2 * 32
    z = np.load(os.path.join(trained, 'out', 'grid.npy'))
    np.testing.assert_array_equal(z, np.random.default_rng(7).standard_normal((6, 100)).astype(
        np.float32))


def test_interpolation_endpoints_are_the_generator_outputs(trained):
    model = os.path.join(trained, 'models', 'MNIST-False', 'generator.keras')
    result = run_script('generate.py', ['--model=' + model, '--out=walk.png', '--interpolate',
                                        '--rows=2', '--steps=5', '--seed=3', '--save_latents'],
                        trained)
    assert result.returncode == 0, result.stderr
    png(os.path.join(trained, 'walk.png'))
    latents = np.load(os.path.join(trained, 'walk.npy'))
    assert latents.shape == (2, 5, 100)
    rng = np.random.default_rng(3)
    rng.standard_normal((2 * 4, 100))  # the sample grid's latents (rows x cols) come first
    ends = rng.standard_normal((2, 2, 100)).astype(np.float32)
    G = keras.models.load_model(model)
    for row in range(2):
        for got, want in ((latents[row, 0], ends[row, 0]), (latents[row, -1], ends[row, 1])):
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(utils.to_uint8(G(got[None], training=False)),
                                          utils.to_uint8(G(want[None], training=False)))
    # the walk stays on the sphere between the endpoints' norms
    norms = np.linalg.norm(latents, axis=-1)
    assert np.all(norms >= norms[:, [0, -1]].min(1, keepdims=True) - 1e-3)


def test_arithmetic_a_equal_c_b_empty_gives_a_mean(trained):
    z = np.random.default_rng(0).standard_normal((16, 100)).astype(np.float32)
    groups = utils.parse_arithmetic('2,5,9-+2,5,9', 16)
    assert groups == [[2, 5, 9], [], [2, 5, 9]]
    mean_a, mean_b, mean_c, result = utils.arithmetic_latents(z, groups)
    np.testing.assert_allclose(result, z[[2, 5, 9]].mean(0), atol=1e-6)
    assert not mean_b.any()
    # with equal group sizes it is the paper's mean(A) - mean(B) + mean(C)
    _, _, _, paper = utils.arithmetic_latents(z, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(paper, z[[1, 2]].mean(0) - z[[3, 4]].mean(0) + z[[5, 6]].mean(0),
                               atol=1e-6)
    model = os.path.join(trained, 'models', 'MNIST-False', 'generator.keras')
    result = run_script('generate.py', ['--model=' + model, '--out=arith.png',
                                        '--arithmetic=2,5,9-+2,5,9', '--save_latents'], trained)
    assert result.returncode == 0, result.stderr
    latents = np.load(os.path.join(trained, 'arith.npy'))
    G = keras.models.load_model(model)
    np.testing.assert_array_equal(utils.to_uint8(G(latents[3:4], training=False)),
                                  utils.to_uint8(G(latents[0:1], training=False)))
    assert png(os.path.join(trained, 'arith.png'))[0] > 4 * 32


def test_generate_from_weights_file(trained):
    weights = os.path.join('models', 'MNIST-False', 'Generator.weights.h5')
    ok = run_script('generate.py', ['--model=' + weights, '--DisInSize=32', '--out=w.png'], trained)
    assert ok.returncode == 0, ok.stderr
    bad = run_script('generate.py', ['--model=' + weights, '--DisInSize=64', '--out=w.png'], trained)
    assert 'pass the --ImageType, --DisInSize and --noise_dim of its training run' in error_line(bad)


@pytest.mark.parametrize('args,message', [
    ([], 'pass --model='),
    (['--model=nope.keras'], '--model nope.keras does not exist'),
    (['--model=models/MNIST-False/generator.keras', '--arithmetic=1,2+3'],
     'is not A-B+C with comma-separated sample indices'),
    (['--model=models/MNIST-False/generator.keras', '--arithmetic=1-2+40'],
     'indices [40] are outside the grid of 16 samples'),
])
def test_generate_bad_input(trained, args, message):
    assert message in error_line(run_script('generate.py', args, trained))


def test_parse_arithmetic_needs_a_and_c():
    with pytest.raises(UsageError, match='groups A and C need at least one index'):
        utils.parse_arithmetic('-1+2', 16)
