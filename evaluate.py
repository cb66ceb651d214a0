"""Measure a trained generator against real images: FID, KID, precision/recall and IS.

python evaluate.py --model=models/img_celeba-True/generator.keras --ImageType=img_celeba
    --TFRecordPath=records --num_samples=10000
"""
import dataclasses
import json
import os

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
from absl import app  # noqa: E402

import conditions  # noqa: E402
import config  # noqa: E402
import errors  # noqa: E402
from errors import UsageError  # noqa: E402
import files  # noqa: E402


def evaluate_generator(generator, settings, condition=None):
    """Every metric of generator against the real images (or statistics file) of settings, as a dict,
    with the real-vs-real FID of two halves of the reference images as 'fid_floor' when known.
    The real images are read at the generator's size, so that like is compared with like. A
    conditional generator (condition: its conditions.Condition) is also judged by a classifier of
    the real labelled images, and measured class by class."""
    import metrics
    source = dataclasses.replace(settings.source, size=generator.output_shape[1])
    if condition is not None and condition.kind == conditions.CLASS \
            and tuple(source.class_names()) != condition.names:
        raise UsageError('the generator draws the classes {} but --ImageType={} has {}: pass the '
                         'data it was trained on.'.format(', '.join(condition.names),
                                                          source.image_type,
                                                          ', '.join(source.class_names())))
    if generator.output_shape[-1] != source.channels:
        raise UsageError('the generator makes {}-channel images but --ImageType={} has {}: pass '
                         'the --ImageType it was trained on.'.format(
                             generator.output_shape[-1], source.image_type, source.channels))
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(
        settings.feature_model, settings.inception_weights, settings.inception_graph))
    stats_dir = source.stats_dir(settings.stats_dir)
    if not settings.reference_stats or condition is not None:
        images, n_images = source.load(condition=condition)
    if settings.reference_stats:
        reference = metrics.load_stats(settings.reference_stats)
    else:
        reference = metrics.reference_features(
            extractor, images, min(settings.ref_samples, n_images), source.identity(), stats_dir,
            settings.batch, condition)
    judge = None if condition is None else metrics.label_classifier(
        images, n_images, condition, source.identity(), stats_dir)
    result = metrics.evaluate(generator, extractor, reference, settings.num_samples, settings.seed,
                              settings.batch, condition, judge)
    features = reference.features
    result['fid_floor'] = (metrics.fid(features[::2], features[1::2])
                           if features is not None and len(features) >= 4 else None)
    if settings.save_stats:
        reference.save_stats(settings.save_stats)
    return result


def report(result, settings):
    """The lines evaluate.py prints: every metric, and the scale of the FID."""
    lines = ['{} against {}:'.format(settings.model, result['reference']),
             '  FID {fid:.4f}   KID {kid_mean:.5f} +- {kid_std:.5f}   precision {precision:.4f}   '
             'recall {recall:.4f}   IS {is_mean:.4f} +- {is_std:.4f}'.format(**result)]
    if result['fid_floor'] is not None:
        lines.append('  scale: two halves of the reference images score FID {:.4f} against each '
                     'other (the floor this many images allow); lower is better'.format(
                         result['fid_floor']))
    else:
        lines.append('  KID and precision/recall need the real images\' features, which a '
                     'statistics file does not hold: reported as NaN')
    if 'conditional_accuracy' in result:
        lines.append('  conditional accuracy {:.4f}: the share of images a classifier of the real '
                     'labelled images reads as the condition asked for; on held-out real images '
                     'it is right {:.4f} of the time (the ceiling)'.format(
                         result['conditional_accuracy'], result['classifier_accuracy']))
    for name, values in (('FID of each class', result.get('class_fid')),
                         ('accuracy of each attribute', result.get('attribute_accuracy'))):
        if values:
            lines.append('  {}: {}'.format(name, ', '.join(
                '{} {:.4f}'.format(k, v) for k, v in values.items())))
    lines.append('  {} generated images{}, features of {} ({} precision)'.format(
        result['num_samples'], ', as many of each class' if 'conditional_accuracy' in result
        else '', result['feature_model'], result['protocol']['compute_dtype']))
    return lines


@errors.entry_point
def main(_argv):
    run(config.from_flags(config.EvalConfig), config.given(config.SHAPE_FLAGS))


def run(settings, given=None):
    """Evaluate the generator of a config.EvalConfig, report and write its results. given: the
    shape flags the user passed (None: all of settings')."""
    if not settings.model:
        raise UsageError('pass --model=models/{SaveName}/generator.keras')
    for path in (settings.out, settings.save_stats):
        if path:
            files.check_output_file(path)
    # TensorFlow (5 s) loads here, once the flags and the output files are checked
    import devices
    import dataset
    import model
    devices.set_precision(settings.mixed_precision)
    generator = model.load_generator(settings.model, dataset.channels(settings.ImageType),
                                     settings.DisInSize, settings.noise_dim, settings.filters,
                                     given=given,
                                     arch=settings.arch, conditioning=settings.conditioning)
    condition = conditions.load(settings.model) if model.is_conditional(generator) else None
    result = evaluate_generator(generator, settings, condition)
    result['model'] = settings.model
    print('\n'.join(report(result, settings)))
    if settings.save_stats:
        print('wrote {} (mu and sigma, TTUR\'s format)'.format(settings.save_stats))
    if settings.out:
        with files.saving('the results', settings.out) as tmp, files.open_file(tmp, 'w') as f:
            json.dump(result, f, indent=1)
        print('wrote {}'.format(settings.out))


if __name__ == '__main__':
    # flags defined when run, not when imported: evaluate.py's --out and generate.py's differ,
    # and one process (a test) may import both
    config.define_flags(config.EvalConfig, __name__)
    app.run(main)
