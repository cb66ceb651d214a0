"""Small generated MNIST and CelebA-layout folders, for tests and benchmarks (no download needed)."""
import io
import os

import numpy as np
from PIL import Image

from records import CELEBA_ATTRIBUTES as ATTR_NAMES

LANDMARK_NAMES = ('lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x '
                  'leftmouth_y rightmouth_x rightmouth_y').split()
BOX_COLOUR = (255, 0, 0)


def write_mnist(path, n_train=64, n_test=16, seed=0):
    """Write a tiny mnist.npz in Keras' layout: bright squares on black, uint8 28x28."""
    rng = np.random.default_rng(seed)

    def digits(n):
        x = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            r, c = rng.integers(2, 14, size=2)
            x[i, r:r + 12, c:c + 12] = rng.integers(128, 256)
        return x, rng.integers(0, 10, size=n).astype(np.uint8)

    x_train, y_train = digits(n_train)
    x_test, y_test = digits(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def smooth_image(rng, width, height, grain=12):
    """A smooth random RGB picture with some grain, so that it compresses like a photo."""
    small = Image.fromarray(rng.integers(0, 256, (max(2, height // 24), max(2, width // 24), 3),
                                         dtype=np.uint8))
    big = np.asarray(small.resize((width, height), Image.BICUBIC), dtype=np.int16)
    big = big + rng.integers(-grain, grain + 1, big.shape)
    return np.clip(big, 0, 255).astype(np.uint8)


def encode(array, fmt, quality=95):
    """Encode a uint8 RGB array as JPEG (no chroma subsampling) or PNG bytes."""
    buf = io.BytesIO()
    if fmt == 'JPEG':
        Image.fromarray(array).save(buf, 'JPEG', quality=quality, subsampling=0)
    else:
        Image.fromarray(array).save(buf, 'PNG')
    return buf.getvalue()


def write_celeba(root, n=36, layout='official', wild_size=(96, 112), align_size=(48, 56),
                 seed=0, split=(0.6, 0.2), progress=None, grain=12, wild_quality=100):
    """Write a CelebA-layout folder of n images with all annotation files; returns the bboxes.

    Every in-the-wild image has a solid BOX_COLOUR rectangle exactly at its bounding box, whose
    corners sit on 8-pixel JPEG blocks. layout is 'official', 'torchvision' or 'kaggle';
    progress wraps the image loop (e.g. tqdm); grain and wild_quality tune the file sizes.
    """
    rng = np.random.default_rng(seed)
    ids = ['{:06d}.jpg'.format(i + 1) for i in range(n)]
    if layout == 'official':
        dirs = {t: os.path.join(root, 'Img', t)
                for t in ('img_celeba', 'img_align_celeba', 'img_align_celeba_png')}
        anno_dir, eval_dir = os.path.join(root, 'Anno'), os.path.join(root, 'Eval')
    elif layout == 'torchvision':
        dirs = {'img_align_celeba': os.path.join(root, 'img_align_celeba')}
        anno_dir = eval_dir = root
    elif layout == 'kaggle':
        dirs = {'img_align_celeba': os.path.join(root, 'img_align_celeba', 'img_align_celeba')}
        anno_dir = eval_dir = root
    else:
        raise ValueError(layout)
    for d in list(dirs.values()) + [anno_dir, eval_dir]:
        os.makedirs(d, exist_ok=True)

    bboxes, rows = {}, {k: [] for k in ('bbox', 'attr', 'lm', 'lma', 'id', 'part')}
    for i, image_id in enumerate(progress(ids) if progress else ids):
        stem = image_id[:-4]
        w, h = wild_size
        bw, bh = 8 * int(rng.integers(2, w // 16 + 1)), 8 * int(rng.integers(2, h // 16 + 1))
        bx, by = 8 * int(rng.integers(0, (w - bw) // 8 + 1)), 8 * int(rng.integers(0, (h - bh) // 8 + 1))
        if 'img_celeba' in dirs:
            wild = smooth_image(rng, w, h, grain)
            wild[by:by + bh, bx:bx + bw] = BOX_COLOUR
            with open(os.path.join(dirs['img_celeba'], image_id), 'wb') as f:
                f.write(encode(wild, 'JPEG', quality=wild_quality))
        aligned = smooth_image(rng, *align_size, grain)
        with open(os.path.join(dirs['img_align_celeba'], image_id), 'wb') as f:
            f.write(encode(aligned, 'JPEG'))
        if 'img_align_celeba_png' in dirs:
            with open(os.path.join(dirs['img_align_celeba_png'], stem + '.png'), 'wb') as f:
                f.write(encode(aligned, 'PNG'))
        bboxes[image_id] = (bx, by, bw, bh)
        fraction = i / n
        part = 0 if fraction < split[0] else 1 if fraction < split[0] + split[1] else 2
        rows['bbox'].append([image_id, bx, by, bw, bh])
        rows['attr'].append([image_id] + list(rng.choice([-1, 1], size=len(ATTR_NAMES))))
        rows['lm'].append([image_id] + list(rng.integers(0, min(w, h), size=10)))
        rows['lma'].append([image_id] + list(rng.integers(0, min(align_size), size=10)))
        rows['id'].append([image_id, int(rng.integers(1, 10178))])
        rows['part'].append([image_id, part])

    def txt(path, table, header=None):
        with open(path, 'w') as f:
            if header is not None:
                f.write('{}\n{}\n'.format(len(table), ' '.join(header)))
            for row in table:
                f.write(row[0] + ' ' + ' '.join('{:>4}'.format(v) for v in row[1:]) + '\n')

    def csv(path, table, header):
        with open(path, 'w') as f:
            f.write(','.join(header) + '\n')
            for row in table:
                f.write(','.join(str(v) for v in row) + '\n')

    if layout == 'kaggle':
        csv(os.path.join(root, 'list_bbox_celeba.csv'), rows['bbox'],
            ['image_id', 'x_1', 'y_1', 'width', 'height'])
        csv(os.path.join(root, 'list_attr_celeba.csv'), rows['attr'], ['image_id'] + list(ATTR_NAMES))
        csv(os.path.join(root, 'list_landmarks_align_celeba.csv'), rows['lma'],
            ['image_id'] + LANDMARK_NAMES)
        csv(os.path.join(root, 'list_eval_partition.csv'), rows['part'], ['image_id', 'partition'])
    else:
        txt(os.path.join(anno_dir, 'list_bbox_celeba.txt'), rows['bbox'],
            ['image_id', 'x_1', 'y_1', 'width', 'height'])
        txt(os.path.join(anno_dir, 'list_attr_celeba.txt'), rows['attr'], ATTR_NAMES)
        if layout == 'official':
            txt(os.path.join(anno_dir, 'list_landmarks_celeba.txt'), rows['lm'], LANDMARK_NAMES)
        txt(os.path.join(anno_dir, 'list_landmarks_align_celeba.txt'), rows['lma'], LANDMARK_NAMES)
        txt(os.path.join(anno_dir, 'identity_CelebA.txt'), rows['id'])
        txt(os.path.join(eval_dir, 'list_eval_partition.txt'), rows['part'])
    return bboxes


def write_folder(root, seed=0):
    """A folder of pictures as users have them: nested class folders, every format and colour mode
    the converter handles, and things it must skip. Returns {relative path: skip reason or None}."""
    rng = np.random.default_rng(seed)
    files = {}

    def picture(rel, img, fmt, **options):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path, fmt, **options)
        files[rel] = None

    def rgb(w, h):
        return Image.fromarray(smooth_image(rng, w, h))

    picture('cats/a.jpg', rgb(40, 30), 'JPEG')
    picture('cats/b.png', rgb(33, 47), 'PNG')
    picture('cats/deeper/c.webp', rgb(36, 36), 'WEBP')
    picture('dogs/d.bmp', rgb(50, 40), 'BMP')
    picture('dogs/e_cmyk.jpg', rgb(40, 40).convert('CMYK'), 'JPEG')
    picture('dogs/f_gray.jpg', rgb(40, 40).convert('L'), 'JPEG')
    sixteen = (np.asarray(rgb(40, 40).convert('L'), np.uint16) * 257).astype(np.uint16)
    picture('dogs/g_16bit.png', Image.fromarray(sixteen), 'PNG')
    picture('dogs/h_palette.gif', rgb(40, 40).convert('P'), 'GIF')
    picture('dogs/i.tiff', rgb(20, 20), 'TIFF')  # smaller than 32 px: upscaled for training
    picture('top.jpg', rgb(64, 48), 'JPEG')  # directly in the folder: label of ''
    # things to skip: a cut-off JPEG, a text file with an image name, hidden files
    data = encode(smooth_image(rng, 40, 40), 'JPEG')
    with open(os.path.join(root, 'cats', 'truncated.jpg'), 'wb') as f:
        f.write(data[:len(data) // 2])
    files['cats/truncated.jpg'] = 'truncated'
    with open(os.path.join(root, 'dogs', 'notes.jpg'), 'w') as f:
        f.write('not a picture\n')
    files['dogs/notes.jpg'] = 'not an image'
    for hidden in ('.DS_Store', 'cats/.hidden.jpg'):
        with open(os.path.join(root, hidden), 'wb') as f:
            f.write(data)
    return files
