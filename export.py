"""Write a trained generator for use outside this code: a SavedModel (TF Serving, Vertex AI), TFLite
(phones) and ONNX (onnxruntime, the browser), each loaded back with its own runtime and compared
with the Keras generator before it is kept; and a page that draws with it in the browser."""
import os

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

# how far an export's uint8 images may be from the Keras generator's (float16 weights: 2)
TOLERANCE = {'saved_model': 1, 'tflite': 1, 'tflite_f16': 2, 'onnx': 1}
CHECK_LATENTS = 16  # fixed latents each export is checked on (the page's first grid)
ONNX_OPSET = 17
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'web', 'index.html')
RUNTIME_FILES = ('ort.wasm.min.js', 'ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs')


class Mismatch(Exception):
    """An export whose images differ from the Keras generator's by more than its tolerance."""


class Generator:
    """A loaded Keras generator with what an export needs: its shapes, its condition (a
    conditions.Condition or None), fixed check latents and the images Keras draws from them."""

    def __init__(self, net, condition, seed):
        self.net, self.condition = net, condition
        self.noise_dim = int(net.inputs[0].shape[-1])
        self.size, self.channels = int(net.output.shape[1]), int(net.output.shape[-1])
        rng = np.random.default_rng(seed)
        self.latents = rng.standard_normal((CHECK_LATENTS, self.noise_dim)).astype(np.float32)
        self.vectors = None if condition is None else condition.balanced(CHECK_LATENTS)
        self.expected = utils.to_uint8(self.output(self.vectors))

    def output(self, vectors):
        """The Keras generator's images in [-1, 1] for the check latents and condition vectors."""
        import model
        return model.apply(self.net, self.latents, vectors)

    def inputs(self):
        """{input name: the check array}: noise, and the condition of a conditional generator."""
        return dict(noise=self.latents, **({} if self.vectors is None else
                                           {'condition': self.vectors}))

    def signature(self):
        """tf.TensorSpecs of the generator's inputs, named as inputs() names them."""
        import tensorflow as tf
        return [tf.TensorSpec([None, a.shape[1]], tf.float32, name=n)
                for n, a in self.inputs().items()]

    def check(self, what, images):
        """Raise Mismatch unless images (uint8, or floats in [-1, 1]) are within what's
        tolerance of Keras's; returns the largest difference on the uint8 scale."""
        images = np.asarray(images)
        images = images if images.dtype == np.uint8 else utils.to_uint8(images)
        if images.shape != self.expected.shape:
            raise Mismatch('{} gives images of shape {}, Keras {}'.format(
                what, images.shape, self.expected.shape))
        worst = int(np.abs(images.astype(int) - self.expected.astype(int)).max())
        if worst > TOLERANCE[what]:
            raise Mismatch('{}\'s images differ from the Keras generator\'s by up to {}/255 on the '
                           'same latents, more than the {}/255 allowed'.format(
                               what, worst, TOLERANCE[what]))
        return worst


def load(path, settings, given):
    """The Generator of a generator.keras (or weights file and shape flags), or one clear error."""
    import dataset
    import model
    net = model.load_generator(path, dataset.channels(settings.ImageType), settings.DisInSize,
                               settings.noise_dim, settings.filters, given=given,
                               arch=settings.arch, conditioning=settings.conditioning)
    condition = conditions.load(path) if model.is_conditional(net) else None
    if model.is_conditional(net) and condition is None:
        raise UsageError('{} takes a condition but has no conditions.json beside it: copy it from '
                         'the run\'s models/{{SaveName}}/ folder.'.format(path))
    return Generator(net, condition, settings.seed)


def archive(gen):
    """The generator's Keras ExportArchive with three signatures: serving_default (noise
    [N, noise_dim] and a conditional's condition [N, C] -> uint8 images [N, H, W, C]), from_seed
    (seed int64 and count int32, or a conditional's condition -> images and the noise drawn) and
    images (as serving_default, images in [-1, 1]: what TFLite converts)."""
    import keras
    import tensorflow as tf
    import model

    def to_uint8(x):
        return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)

    def images(noise, condition=None):
        return {'images': model.apply(gen.net, noise, condition)}

    def serve(noise, condition=None):
        return {'images': to_uint8(model.apply(gen.net, noise, condition))}

    def from_seed(seed, count_or_condition):
        conditional = gen.condition is not None
        count = tf.shape(count_or_condition)[0] if conditional else count_or_condition
        noise = tf.random.stateless_normal(tf.stack([count, gen.noise_dim]),
                                           tf.stack([seed, tf.zeros_like(seed)]))
        drawn = model.apply(gen.net, noise, count_or_condition if conditional else None)
        return {'images': to_uint8(drawn), 'noise': noise}

    signature = gen.signature()
    seeded = [tf.TensorSpec([], tf.int64, name='seed'), signature[1] if gen.condition else
              tf.TensorSpec([], tf.int32, name='count')]
    result = keras.export.ExportArchive()
    result.track(gen.net)
    result.add_endpoint('serving_default', serve, input_signature=signature)
    result.add_endpoint('from_seed', from_seed, input_signature=seeded)
    result.add_endpoint('images', images, input_signature=signature)
    return result


def export_saved_model(gen, path):
    """The SavedModel of archive(gen), checked with tf.saved_model.load."""
    import tensorflow as tf
    with files.saving('the SavedModel', path, folder=True) as tmp:
        files.rmtree(tmp)  # what an export cut off left
        archive(gen).write_out(tmp, verbose=False)
        drawn = tf.saved_model.load(tmp).signatures['serving_default'](
            **{k: tf.constant(v) for k, v in gen.inputs().items()})['images']
        return gen.check('saved_model', drawn.numpy())


def tflite_interpreter(model_content):
    """A TFLite interpreter: LiteRT's where it is installed, else TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings
        import tensorflow as tf
        with warnings.catch_warnings():  # "deprecated": LiteRT is its successor, not on 3.11 here
            warnings.simplefilter('ignore')
            return tf.lite.Interpreter(model_content=model_content)
    return Interpreter(model_content=model_content)


def run_tflite(model_content, inputs):
    """The output of a TFLite model for {name: array} inputs (matched by name)."""
    interpreter = tflite_interpreter(model_content)
    details = interpreter.get_input_details()  # named images_noise:0, images_condition:0
    for d in details:
        interpreter.resize_tensor_input(d['index'], inputs[d['name'][7:-2]].shape)
    interpreter.allocate_tensors()
    for d in details:
        interpreter.set_tensor(d['index'], inputs[d['name'][7:-2]])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]['index'])


def export_tflite(gen, out):
    """generator.tflite (float32) and generator_f16.tflite (float16 weights, where they hold) in
    out: noise, and condition -> images in [-1, 1]; checked with the TFLite interpreter. Returns
    {file: largest difference}."""
    import tempfile
    import tensorflow as tf
    written = {}
    with tempfile.TemporaryDirectory() as scratch:  # (this machine's: converted from there)
        archive(gen).write_out(scratch, verbose=False)
        for name, what in (('generator.tflite', 'tflite'), ('generator_f16.tflite', 'tflite_f16')):
            converter = tf.lite.TFLiteConverter.from_saved_model(scratch,
                                                                 signature_keys=['images'])
            if what == 'tflite_f16':
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            content, path = converter.convert(), os.path.join(out, name)
            try:
                worst = gen.check(what, run_tflite(content, gen.inputs()))
            except Mismatch as e:  # float32 is written; float16 only where it holds
                if what == 'tflite':
                    raise
                print('not written: {} ({})'.format(path, e))
                continue
            with files.saving('the TFLite model', path) as tmp, files.open_file(tmp, 'wb') as f:
                f.write(content)
            written[path] = worst
    return written


def export_onnx(gen, path):
    """An ONNX model (inputs noise and condition, output images in [-1, 1]) by tf2onnx; checked
    with onnxruntime."""
    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    import model
    signature = gen.signature()

    @tf.function(input_signature=signature)
    def images(*inputs):
        return model.apply(gen.net, inputs[0], inputs[1] if len(inputs) > 1 else None)

    proto, _ = tf2onnx.convert.from_function(images, input_signature=signature, opset=ONNX_OPSET)
    content = proto.SerializeToString()
    session = onnxruntime.InferenceSession(content, providers=['CPUExecutionProvider'])
    worst = gen.check('onnx', session.run(None, gen.inputs())[0])
    with files.saving('the ONNX model', path) as tmp, files.open_file(tmp, 'wb') as f:
        f.write(content)
    return worst


def describe(gen):
    """What a user of the exports needs: shapes, value ranges, the condition's names."""
    return dict(noise_dim=gen.noise_dim, image_size=gen.size, channels=gen.channels,
                images='[N, {0}, {0}, {1}]: uint8 from the SavedModel, floats in [-1, 1] from '
                'TFLite and ONNX'.format(gen.size, gen.channels),
                condition=None if gen.condition is None else dict(
                    kind=gen.condition.kind, names=list(gen.condition.names)))


def export(gen, formats, out):
    """Write and check each of formats into the folder out; returns {file: largest difference}."""
    written = {}
    if 'saved_model' in formats:
        path = os.path.join(out, 'saved_model')
        written[path] = export_saved_model(gen, path)
    if 'tflite' in formats:
        written.update(export_tflite(gen, out))
    if 'onnx' in formats:
        path = os.path.join(out, 'generator.onnx')
        written[path] = export_onnx(gen, path)
    if written:
        files.write_json(os.path.join(out, 'generator.json'), describe(gen), 'the description')
    return written


def write_page(gen, folder, runtime, onnx=None):
    """The browser page in folder: index.html, generator.onnx (a copy of onnx, a checked export,
    or converted and checked now), generator.json (shapes, class names, the check latents) and
    onnxruntime-web's files from runtime."""
    missing = [n for n in RUNTIME_FILES if not files.isfile(os.path.join(runtime, n))]
    if missing:
        raise UsageError('--web_runtime {} lacks {}: install the browser runtime with npm install '
                         '(in this repository; package.json pins onnxruntime-web), or pass the '
                         'folder of its dist/ files.'.format(runtime, ', '.join(missing)))
    copies = [(os.path.join(runtime, name), os.path.join(folder, 'ort', name))
              for name in RUNTIME_FILES]
    if onnx:
        copies.append((onnx, os.path.join(folder, 'generator.onnx')))
    else:
        export_onnx(gen, os.path.join(folder, 'generator.onnx'))
    for source, target in copies:
        with files.saving('the page\'s files', target) as tmp, \
                files.open_file(source, 'rb') as src, files.open_file(tmp, 'wb') as dst:
            dst.write(src.read())
    files.write_json(os.path.join(folder, 'generator.json'), dict(
        describe(gen), latents=gen.latents.round(6).tolist(),
        conditions=None if gen.vectors is None else gen.vectors.tolist()), 'the page\'s data')
    with files.saving('the page', os.path.join(folder, 'index.html')) as tmp, \
            files.open_file(PAGE) as src, files.open_file(tmp, 'w') as dst:
        dst.write(src.read())


def run(settings, given=None):
    """The exports and page a config.ExportConfig asks for. given: the shape flags the user
    passed (None: all of settings')."""
    if not settings.model:
        raise UsageError('pass --model=models/{SaveName}/generator.keras')
    if not settings.format and not settings.web:
        raise UsageError('nothing to do: give --format (saved_model,tflite,onnx) or --web=DIR')
    for folder in ([settings.out] if settings.format else []) + ([settings.web] if settings.web
                                                                else []):
        files.check_writable(folder)
    gen = load(settings.model, settings, given)
    try:
        written = export(gen, settings.format, settings.out)
        for path, worst in written.items():
            print('wrote {} (checked: images within {}/255 of Keras\'s)'.format(path, worst))
        if settings.web:
            write_page(gen, settings.web, settings.web_runtime, next(
                (p for p in written if p.endswith('.onnx')), None))
            print('wrote {} (serve it: python -m http.server -d {}, then open '
                  'http://localhost:8000)'.format(os.path.join(settings.web, 'index.html'),
                                                  settings.web))
    except Mismatch as e:
        raise UsageError('{}; nothing was written for it.'.format(e))


@errors.entry_point
def main(_argv):
    run(config.from_flags(config.ExportConfig), config.given(config.SHAPE_FLAGS))


if __name__ == '__main__':
    # flags defined when run, not when imported: its --out differs from evaluate.py's and
    # generate.py's, and one process (a test) may import them all
    config.define_flags(config.ExportConfig, __name__)
    app.run(main)
