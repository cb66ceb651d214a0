"""export.py: SavedModel, TFLite and ONNX exports of a small trained generator (unconditional and
conditional), each loaded back with its own runtime; bad models and a failed check in one line;
the browser page in a real headless Chromium."""
import contextlib
import functools
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pytest
import tensorflow as tf

import config
from errors import UsageError
import export
from helpers import ROOT, train_in_process

RUNTIME = os.path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist')


@pytest.fixture(scope='module')
def generators(tmp_path_factory):
    """generators(kind): the generator.keras of a one-step digit run, 'plain' or 'conditional'
    (each trained once, when first asked for)."""
    folder, made = tmp_path_factory.mktemp('export'), {}

    def generator(kind):
        if kind not in made:
            made[kind] = train_in_process(folder / kind, ImageType='digits', epochs=1,
                                          steps_per_epoch=1, seed=3,
                                          conditional=kind == 'conditional').files.generator
        return made[kind]
    return generator


def settings(model, out, **changes):
    return config.ExportConfig(model=model, out=str(out), **changes)


@pytest.mark.slow  # each 8 s: the three converters and runtimes
@pytest.mark.parametrize('kind', ['plain', 'conditional'])
def test_each_format_round_trips(generators, tmp_path, kind, capsys):
    export.run(settings(generators(kind), tmp_path))
    out = capsys.readouterr().out
    gen = export.load(generators(kind), config.ExportConfig(), None)
    inputs = gen.inputs()
    assert set(inputs) == ({'noise', 'condition'} if kind == 'conditional' else {'noise'})
    # SavedModel: the signatures' names, dtypes and shapes, as TF Serving reads them
    saved = tf.saved_model.load(str(tmp_path / 'saved_model'))
    assert set(saved.signatures) == {'serving_default', 'from_seed', 'images'}
    serve = saved.signatures['serving_default']
    specs = serve.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in specs.items()} == \
        {k: (tf.float32, [None, v.shape[1]]) for k, v in inputs.items()}
    assert serve.structured_outputs['images'].dtype == tf.uint8
    images = serve(**{k: tf.constant(v) for k, v in inputs.items()})['images'].numpy()
    assert images.shape == (16, 32, 32, 1) and images.dtype == np.uint8
    assert np.abs(images.astype(int) - gen.expected.astype(int)).max() <= 1
    seeded = saved.signatures['from_seed'](
        seed=tf.constant(5, tf.int64),
        **({'condition': tf.constant(inputs['condition'][:3])} if kind == 'conditional' else
           {'count': tf.constant(3)}))
    assert seeded['images'].shape == (3, 32, 32, 1) and seeded['noise'].shape == (3, 100)
    # TFLite, float32 and float16 weights, with the interpreter
    for name, tolerance in (('generator.tflite', 1), ('generator_f16.tflite', 2)):
        drawn = export.run_tflite((tmp_path / name).read_bytes(), inputs)
        assert np.abs(export.utils.to_uint8(drawn).astype(int) -
                      gen.expected.astype(int)).max() <= tolerance, name
    # ONNX with onnxruntime: noise (and condition) in, images in [-1, 1] out
    import onnxruntime
    session = onnxruntime.InferenceSession(str(tmp_path / 'generator.onnx'),
                                           providers=['CPUExecutionProvider'])
    assert sorted(i.name for i in session.get_inputs()) == sorted(inputs)
    drawn = session.run(None, inputs)[0]
    assert drawn.min() >= -1 and drawn.max() <= 1
    assert np.abs(export.utils.to_uint8(drawn).astype(int) - gen.expected.astype(int)).max() <= 1
    described = json.loads((tmp_path / 'generator.json').read_text())
    assert (described['noise_dim'], described['image_size'], described['channels']) == (100, 32, 1)
    assert (described['condition'] or {}).get('names') == \
        (list('0123456789') if kind == 'conditional' else None)
    assert out.count('checked: images within') == 4
    assert sorted(os.listdir(tmp_path)) == ['generator.json', 'generator.onnx',
                                            'generator.tflite', 'generator_f16.tflite',
                                            'saved_model']


@pytest.mark.slow  # two exports: 7 s
def test_a_failed_check_is_one_line_and_leaves_nothing(generators, tmp_path, monkeypatch,
                                                        capsys):
    # float16 weights that miss their tolerance are left out with a note, float32 written; then
    # the ONNX file fails its check: one line, and no file of it
    monkeypatch.setitem(export.TOLERANCE, 'tflite_f16', -1)
    monkeypatch.setitem(export.TOLERANCE, 'onnx', -1)
    with pytest.raises(UsageError, match=r"^onnx's images differ from the Keras generator's by up "
                       r"to 0/255 on the same latents, more than the -1/255 allowed; nothing was "
                       r"written for it\.$"):
        export.run(settings(generators('plain'), tmp_path, format=('tflite', 'onnx')))
    assert "not written: {} (tflite_f16's images differ".format(
        tmp_path / 'generator_f16.tflite') in capsys.readouterr().out
    assert os.listdir(tmp_path) == ['generator.tflite']
    # a SavedModel folder that fails: no folder, nor its temporary
    monkeypatch.setitem(export.TOLERANCE, 'saved_model', -1)
    with pytest.raises(UsageError, match="^saved_model's images differ"):
        export.run(settings(generators('plain'), tmp_path, format=('saved_model',)))
    assert os.listdir(tmp_path) == ['generator.tflite']


def test_bad_models_are_one_line(generators, tmp_path):
    damaged = tmp_path / 'generator.keras'
    damaged.write_bytes(open(generators('plain'), 'rb').read()[:1000])
    with pytest.raises(UsageError, match='is not a whole .keras file'):
        export.run(settings(str(damaged), tmp_path / 'out'))
    discriminator = tmp_path / 'd' / 'generator.keras'
    os.makedirs(discriminator.parent)
    import model
    model.save_network(model.Dis_Net(32, 1, filters=128), str(discriminator), 'a network')
    with pytest.raises(UsageError, match='is not a generator'):
        export.run(settings(str(discriminator), tmp_path / 'out'))
    with pytest.raises(UsageError, match='lacks ort.wasm.min.js'):
        export.run(settings(generators('plain'), tmp_path / 'out', format=(),
                            web=str(tmp_path / 'web'), web_runtime=str(tmp_path)))


def chromium():
    """The system's Chromium, or None."""
    return next((p for p in (shutil.which(n) for n in ('chromium', 'chromium-browser',
                                                         'google-chrome')) if p), None)


@contextlib.contextmanager
def serving(folder):
    """A static HTTP server of folder on a free port; yields its URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(
        Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:{}/'.format(server.server_address[1])
    finally:
        server.shutdown()


def grid_tiles(pixels):
    """The 16 tiles [16, 32, 32] of a 4x4 grid canvas's RGBA pixels (gray: its red)."""
    grid = np.array(pixels, np.uint8).reshape(4 * 32, 4 * 32, 4)[..., 0]
    return grid.reshape(4, 32, 4, 32).transpose(0, 2, 1, 3).reshape(16, 32, 32)


@pytest.mark.slow
def test_the_page_draws_in_a_real_browser(generators, tmp_path):
    # the conditional generator's page: its first grid, then every tile of class 7 once chosen
    browser_path = chromium()
    if browser_path is None:
        pytest.skip('no Chromium on this machine: bash tools/browser_setup.sh (as .ci/run does) '
                    'installs it')
    if not os.path.isfile(os.path.join(RUNTIME, 'ort.wasm.min.js')):
        pytest.skip('no onnxruntime-web in node_modules/: bash tools/browser_setup.sh (as .ci/run '
                    'does) runs npm ci')
    playwright = pytest.importorskip('playwright.sync_api')
    export.run(settings(generators('conditional'), tmp_path / 'out', format=(),
                        web=str(tmp_path / 'web'), web_runtime=RUNTIME))
    gen = export.load(generators('conditional'), config.ExportConfig(), None)
    sevens = export.utils.to_uint8(gen.output(gen.condition.vectors(np.full(16, 7))))
    read = ("() => { const c = document.getElementById('grid'); return Array.from("
            "c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }")
    with serving(tmp_path / 'web') as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=['--no-sandbox'])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector('body[data-drawn="1"]', timeout=60000)
        assert 'conditioned on 0, 1, 2' in page.text_content('#status')
        first = grid_tiles(page.evaluate(read))
        page.select_option('#class', '7')
        page.wait_for_selector('body[data-drawn="2"]', timeout=60000)
        chosen = grid_tiles(page.evaluate(read))
        assert page.evaluate('vectors') == gen.condition.vectors(np.full(16, 7)).tolist()
        browser.close()
    assert np.abs(first.astype(int) - gen.expected[..., 0].astype(int)).max() <= 2
    assert np.abs(chosen.astype(int) - sevens[..., 0].astype(int)).max() <= 2
    assert first.std() > 1  # not a blank canvas
