"""The seed's DCGAN generator and discriminator as Keras 3 functional models, spectral
normalization for the discriminator, and their loading."""
import io
import math
import zipfile

import keras
from keras.layers import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dot,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    LeakyReLU,
    Multiply,
    ReLU,
    Rescaling,
    Reshape,
    UpSampling2D,
)

import conditions
from config import SHAPE_FLAG_LIST, SHAPE_FLAGS
import dataset
from errors import UsageError
import files
import run_files

SUPPORTED_SIZES = (32, 64, 128)


def num_blocks(image_size):
    """Number of stride-2 blocks between a 4x4 feature map and an image_size image."""
    if image_size not in SUPPORTED_SIZES:
        raise ValueError('DisInSize must be one of {}, got {}: the networks grow from 4x4 by '
                         'powers of two.'.format(', '.join(map(str, SUPPORTED_SIZES)), image_size))
    return int(math.log2(image_size)) - 2


def check_filters(filters, image_size):
    """Refuse a --filters that does not halve down to a whole number at every block."""
    smallest = 2 ** (num_blocks(image_size) - 1)
    if filters < smallest or filters % smallest:
        raise ValueError('filters must be a multiple of {} at DisInSize {} (each block halves it), '
                         'got {}'.format(smallest, image_size, filters))


class SpectralNorm(keras.layers.Wrapper):
    """Spectral normalization of a Conv2D or Dense layer (Miyato et al. 2018): the layer computes
    with kernel / sigma, sigma the largest singular value of the kernel as a [fan_in, units]
    matrix, estimated from vectors u, v that power_iteration() moves by one step. Gradients flow
    through sigma; the kernel itself is never rewritten. u and v are variables of the layer, so
    checkpoints keep them; under tf.distribute every replica computes the same update and the
    first replica's is kept."""

    def build(self, input_shape):
        """Build the wrapped layer, and u, v from a fixed draw (the first power step's start)."""
        self.layer.build(input_shape)
        fan_in, units = math.prod(self.layer.kernel.shape[:-1]), self.layer.kernel.shape[-1]
        self.u = self.add_weight(shape=(units,), initializer=keras.initializers.RandomNormal(
            seed=1), trainable=False, name='sn_u', aggregation='only_first_replica')
        self.v = self.add_weight(shape=(fan_in,), initializer='zeros', trainable=False,
                                 name='sn_v', aggregation='only_first_replica')
        self.power_iteration()  # so that sigma is an estimate before the first train step
        self.built = True

    def matrix(self):
        """The kernel as a [fan_in, units] float32 matrix."""
        kernel = self.layer.kernel
        return keras.ops.reshape(keras.ops.cast(kernel.value, 'float32'), (-1, kernel.shape[-1]))

    def power_iteration(self):
        """One step of the power method: v = W u / |W u|, u = W^T v / |W^T v|."""
        w = self.matrix()
        v = normalized(keras.ops.matmul(w, self.u.value))
        self.v.assign(v)
        self.u.assign(normalized(keras.ops.matmul(v, w)))

    def sigma(self):
        """The estimate v^T W u of the largest singular value, differentiable in W."""
        u, v = keras.ops.stop_gradient(self.u.value), keras.ops.stop_gradient(self.v.value)
        return keras.ops.sum(v * keras.ops.matmul(self.matrix(), u))

    def call(self, inputs):
        kernel = self.layer.kernel
        scaled = keras.ops.cast(kernel.value, 'float32') / self.sigma()
        with keras.StatelessScope(state_mapping=[(kernel, keras.ops.cast(scaled, kernel.dtype))]):
            return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def normalized(x):
    """x / |x|, safe at 0."""
    return x / (keras.ops.sqrt(keras.ops.sum(x * x)) + 1e-12)


def layer_options(arch):
    """Keyword arguments of the convolutions and BatchNorms of an arch (config.ARCHS): Keras'
    defaults for the seed's; for dcgan's, N(0, 0.02) kernels, BatchNorm scales N(1, 0.02) and no
    biases (pytorch/examples' weights_init)."""
    if arch == 'seed':
        return {}, {}
    return (dict(use_bias=False, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02)),
            dict(gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02)))


def spectral_layers(net):
    """The SpectralNorm layers of net, whose power_iteration() a train step calls once."""
    return [layer for layer in net.layers if isinstance(layer, SpectralNorm)]


def Dis_Net(ImageSize, Channel, sync_bn=False, filters=1024, dropout=0.3, spectral_norm=False,
            logits=False, arch='seed', condition_size=0, conditioning='concat'):
    """Image [ImageSize, ImageSize, Channel] -> probability that it is real, shape [batch, 1];
    filters is the last block's width (the seed's 1024), halved at each block before it;
    dropout the rate of its Dropout layers (the seed's 0.3). spectral_norm: every convolution and
    the dense layer spectrally normalized, and no BatchNorm (SN-DCGAN); logits: the output
    before the sigmoid (for the hinge and least-squares losses and R1); arch 'dcgan': LeakyReLU
    0.2, no Dropout, no Dense layer, layer_options' weights. condition_size C > 0: a second input,
    the condition [batch, C], enters as conditioning says: concat, as C more channels of the
    image (keras-io's conditional GAN); projection, the inner product of its embedding with the
    last features summed over their 4x4 positions, added to the logit (Miyato & Koyama 2018)."""
    if isinstance(ImageSize, (list, tuple)):
        Length, Width = ImageSize
        if Length != Width:
            raise ValueError('Dis_Net needs a square image, got {}x{}.'.format(Length, Width))
        ImageSize = Length
    blocks = num_blocks(ImageSize)
    check_filters(filters, ImageSize)
    # the normalization in float32 (the wrapped layer still computes in the mixed policy)
    weighted = (lambda layer: SpectralNorm(layer, dtype='float32')) if spectral_norm \
        else (lambda layer: layer)
    seed = arch == 'seed'
    conv, norm = layer_options(arch)
    x = inputs_x = Input([ImageSize, ImageSize, Channel], name='image' if condition_size else None)
    condition = Input([condition_size], name='condition') if condition_size else None
    if condition is not None and conditioning == 'concat':
        # state size: ImageSize x ImageSize x (Channel + C), the condition at every pixel
        tiled = UpSampling2D((ImageSize, ImageSize))(Reshape((1, 1, condition_size))(condition))
        x = Concatenate()([x, tiled])
    # the seed's 64x64 net: 128, 256, 512, 1024 filters; 32 drops the first block, 128 adds one
    widths = [filters // 2 ** i for i in reversed(range(blocks))]
    for i, f in enumerate(widths):
        # state size: (ImageSize / 2^(i+1)) x (ImageSize / 2^(i+1)) x f
        x = weighted(Conv2D(f, (4, 4), strides=(2, 2), padding='same', **conv))(x)
        if i > 0 and not spectral_norm:
            x = BatchNormalization(synchronized=sync_bn, **norm)(x)
        x = LeakyReLU(0.3 if seed else 0.2)(x)
        if i > 0 and seed:
            x = Dropout(dropout)(x)
    features = x
    # state size: 1x1x1
    x = weighted(Conv2D(1, (4, 4), strides=(1, 1), padding='valid', **conv))(x)
    if seed:
        x = Dropout(dropout)(x)
    x = Flatten()(x)
    if seed:
        x = weighted(Dense(1))(x)
    if condition is not None and conditioning == 'projection':
        # state size: 1: <embedding of the condition, the last features summed over 4x4>
        embedded = weighted(Dense(filters, use_bias=False))(condition)
        summed = Rescaling(16.0)(GlobalAveragePooling2D()(features))
        x = Add()([x, Dot(axes=1)([embedded, summed])])
    # the sigmoid in float32 so the probability is exact under mixed precision
    output = Activation('linear' if logits else 'sigmoid', dtype='float32')(x)
    inputs = [inputs_x, condition] if condition is not None else inputs_x
    return keras.Model(inputs, output, name='Discriminator')


def Gen_Net(Channel, noise_dim=100, image_size=64, sync_bn=False, filters=1024, arch='seed',
            condition_size=0, conditioning='concat'):
    """Noise [noise_dim] -> image [image_size, image_size, Channel] in [-1, 1]; filters is the
    first block's width (the seed's 1024), halved at each block after it; arch 'dcgan': ReLU and
    layer_options' weights. condition_size C > 0: inputs [noise, condition [C]], the condition
    concatenated to the noise (conditioning concat) or setting every BatchNorm's scale and
    offset (projection: conditional BatchNorm, as in Miyato & Koyama 2018)."""
    blocks = num_blocks(image_size)
    check_filters(filters, image_size)
    conv, norm = layer_options(arch)
    activation = LeakyReLU if arch == 'seed' else ReLU
    x = inputs_x = Input([noise_dim], name='noise' if condition_size else None)
    condition = Input([condition_size], name='condition') if condition_size else None
    conditional_norm = condition is not None and conditioning == 'projection'

    def normalized(x, width):
        """BatchNorm, its scale and offset set by the condition with conditional BatchNorm."""
        if not conditional_norm:
            return BatchNormalization(synchronized=sync_bn, **norm)(x)
        x = BatchNormalization(synchronized=sync_bn, center=False, scale=False)(x)
        small = keras.initializers.RandomNormal(0.0, 0.02)
        scale = Dense(width, kernel_initializer=small, bias_initializer='ones')(condition)
        offset = Dense(width, kernel_initializer=small)(condition)
        return Add()([Multiply()([x, Reshape((1, 1, width))(scale)]),
                      Reshape((1, 1, width))(offset)])

    if condition is not None and conditioning == 'concat':
        x = Concatenate()([x, condition])
    x = Reshape((1, 1, x.shape[-1]))(x)

    # state size: 4x4xfilters (the seed's 4x4x1024)
    x = Conv2DTranspose(filters, (4, 4), strides=(1, 1), padding='valid', **conv)(x)
    x = normalized(x, filters)
    x = activation()(x)

    for i in range(1, blocks):
        # state size: 2^(i+2) x 2^(i+2) x filters / 2^i
        x = Conv2DTranspose(filters // 2 ** i, (4, 4), strides=(2, 2), padding='same', **conv)(x)
        x = normalized(x, filters // 2 ** i)
        x = activation()(x)

    # state size: image_size x image_size x Channel, computed in float32 under mixed precision
    output = Conv2DTranspose(Channel, (4, 4), strides=(2, 2), padding='same', activation='tanh',
                             dtype='float32', **conv)(x)
    inputs = [inputs_x, condition] if condition is not None else inputs_x
    return keras.Model(inputs, output, name='Generator')


def is_conditional(net):
    """Whether a generator (or discriminator) takes a condition as its second input."""
    return len(net.inputs) == 2


def apply(net, x, condition=None, training=False):
    """A network's output for x (noise, or images), with the condition vectors when it takes
    them."""
    return net([x, condition] if is_conditional(net) else x, training=training)


def rng_variables(models):
    """The Dropout layers' seed-generator states, which checkpoints do not track by themselves."""
    return [v for net in models for v in net.non_trainable_variables if 'seed_generator' in v.path]


def save_network(net, path, what):
    """Save net as path (a whole .keras file, or a .weights.h5 file of its weights), completely
    or not at all. Keras writes the file in memory, through the in-memory path of its own saving
    library (keras.src.saving.saving_lib, there since Keras 3.10): h5py writing to a full disk
    printed tracebacks after the error and could crash the process."""
    from keras.src.saving import saving_lib
    buffer = io.BytesIO()
    if path.endswith('.weights.h5'):
        store = saving_lib.H5IOStore(buffer, mode='w')
        saving_lib._save_state(net, weights_store=store, assets_store=None, inner_path='',
                               visited_saveables=set())
        store.close()
    else:
        saving_lib.save_model(net, buffer)
    with files.saving(what, path) as tmp, files.open_file(tmp, 'wb') as f:
        f.write(buffer.getvalue())


def whole_zip(path):
    """Whether path is a zip file read to its end (a .keras file saved whole)."""
    with files.open_file(path, 'rb') as f:
        return zipfile.is_zipfile(f)


def load_generator(path, channels, image_size, noise_dim, filters=1024, given=None, arch='seed',
                   conditioning='concat'):
    """A generator from generator.keras, or from a .weights.h5 file and the flags that shape it
    (and the conditions.json beside it, for a conditional one).

    given: the shape flags the user passed (None: all); for a .weights.h5 file the others come
    from the flags.json of its run, beside it, when there is one."""
    if not files.isfile(path):
        raise UsageError('--model {} {}: pass models/{{SaveName}}/generator.keras (or '
                         'Generator.weights.h5) from a training run.'.format(
                             path, 'is a folder' if files.isdir(path) else 'does not exist'))
    if path.endswith('.keras') and not whole_zip(path):
        raise UsageError('--model {} is not a whole .keras file (damaged or cut off): export it '
                         'again with python main.py --export_only and the run\'s flags, or use '
                         'its best/generator.keras.'.format(path))
    shape = dict(channels=channels, DisInSize=image_size, noise_dim=noise_dim, filters=filters,
                 arch=arch, conditioning=conditioning)
    if path.endswith('.weights.h5') and given is not None:
        shape = saved_shape(path, given, shape)
    try:
        if path.endswith('.weights.h5'):
            condition = conditions.load(path)
            generator = Gen_Net(shape['channels'], shape['noise_dim'], shape['DisInSize'],
                                filters=shape['filters'], arch=shape['arch'],
                                condition_size=condition.size if condition else 0,
                                conditioning=shape['conditioning'])
            generator.load_weights(path)
            return generator
        generator = keras.models.load_model(path, compile=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise UsageError('cannot load {} ({}): with a .weights.h5 file pass the {} of its '
                         'training run.'.format(path, str(e).splitlines()[0][:200],
                                                SHAPE_FLAG_LIST))
    inputs, outputs = generator.input_shape, generator.output_shape
    # noise [N, noise_dim], and with a condition [N, C] beside it
    inputs = inputs if isinstance(inputs, list) and len(inputs) == 2 else [inputs]
    if not all(isinstance(i, tuple) and len(i) == 2 for i in inputs) \
            or not isinstance(outputs, tuple) or len(outputs) != 4:
        raise UsageError('--model {} is not a generator: it maps {} to {} (a discriminator or a '
                         'feature model?), not noise [N, noise_dim] to images [N, H, W, C]; pass '
                         'models/{{SaveName}}/generator.keras.'.format(
                             path, generator.input_shape, outputs))
    if is_conditional(generator) and conditions.load(path) is None:
        raise UsageError('--model {} is a conditional generator but its {} is not beside it: copy '
                         'it from the run\'s models/{{SaveName}}/ folder.'.format(
                             path, conditions.FILE))
    return generator


def saved_shape(path, given, shape):
    """The shape dict of a .weights.h5 file: the settings in given as shape has them, the others
    from the flags.json of its run (run_files.saved_shape)."""
    values = run_files.saved_shape(path, [k for k in SHAPE_FLAGS if k not in given])
    if 'ImageType' in values:
        shape['channels'] = dataset.channels(values.pop('ImageType'))
    values.pop('conditional', None)  # a conditions.json beside the file says it
    shape.update(values)
    return shape
