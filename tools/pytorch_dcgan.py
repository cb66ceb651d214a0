"""The recipe of pytorch/examples' dcgan at the width of main.py --filters=256 (G 256-128-64 at
32 px), for the comparison in docs/recipes.md: constant learning rate 2e-4, Adam (0.5, 0.999),
N(0, 0.02) initialisation, D's update then G's on the same fakes, ReLU in G, no Dropout, no
Dense layer in D. Needs PyTorch (pip install torch; not a project dependency) and the images
that python -m tools.recipes exports; writes 1,000 samples after every epoch, of the trained
generator ('raw{epoch}') and of an average of its weights ('ema{epoch}': main.py --ema=0.999's
ramped decay and recomputed BatchNorm statistics), float16, for tools.recipes.

python tools/pytorch_dcgan.py IMAGES.npz OUT.npz SEED [EPOCHS]   (about 25 minutes on 1 core)
"""
import copy
import sys

import numpy as np
import torch
from torch import nn

NOISE_DIM, BATCH, SAMPLES = 100, 32, 1000
EMA_DECAY, STATS_BATCHES, STATS_BATCH = 0.999, 8, 64  # as main.py --ema=0.999 (ema.py)


def initialise(layer):
    """pytorch/examples' weights_init: N(0, 0.02) kernels, BatchNorm scales N(1, 0.02)."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(layer.weight, 0.0, 0.02)
    elif isinstance(layer, nn.BatchNorm2d):
        nn.init.normal_(layer.weight, 1.0, 0.02)
        nn.init.zeros_(layer.bias)


def networks():
    """The generator and discriminator of pytorch/examples' dcgan, three blocks for 32 px."""
    generator = nn.Sequential(
        # state size: 4x4x256
        nn.ConvTranspose2d(NOISE_DIM, 256, 4, 1, 0, bias=False), nn.BatchNorm2d(256), nn.ReLU(),
        # state size: 8x8x128
        nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        # state size: 16x16x64
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        # state size: 32x32x1
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False), nn.Tanh())
    discriminator = nn.Sequential(
        # state size: 16x16x64
        nn.Conv2d(1, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        # state size: 8x8x128
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        # state size: 4x4x256
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.LeakyReLU(0.2),
        # state size: 1x1x1
        nn.Conv2d(256, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    generator.apply(initialise)
    discriminator.apply(initialise)
    return generator, discriminator


@torch.no_grad()
def average(ema, generator, t):
    """main.py --ema's update after step t: decay min(0.999, (1 + t) / (10 + t))."""
    decay = min(EMA_DECAY, (1 + t) / (10 + t))
    for mine, theirs in zip(ema.parameters(), generator.parameters()):
        mine.mul_(decay).add_(theirs, alpha=1 - decay)


@torch.no_grad()
def standing_statistics(ema, seed):
    """BatchNorm statistics of the averaged weights' own activations on fixed noise (ema.py)."""
    norms = [m for m in ema.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches below
    ema.train()
    noise = torch.Generator().manual_seed(seed + 1)
    for _ in range(STATS_BATCHES):
        ema(torch.randn(STATS_BATCH, NOISE_DIM, 1, 1, generator=noise))
    ema.eval()


def train(images, seed, epochs):
    """Train on images [N, 32, 32, 1] in [-1, 1]; {'raw1': samples, 'ema1': ..., ...}."""
    torch.manual_seed(seed)
    x = torch.tensor(images).permute(0, 3, 1, 2).float()
    generator, discriminator = networks()
    ema = copy.deepcopy(generator)
    loss = nn.BCELoss()
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    latents = torch.randn(SAMPLES, NOISE_DIM, 1, 1, generator=torch.Generator().manual_seed(seed))
    samples, t = {}, 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(x))
        for start in range(0, len(x), BATCH):
            real = x[order[start:start + BATCH]]
            ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
            discriminator.zero_grad()
            loss(discriminator(real).view(-1), ones).backward()
            fake = generator(torch.randn(len(real), NOISE_DIM, 1, 1))
            loss(discriminator(fake.detach()).view(-1), zeros).backward()
            opt_d.step()
            generator.zero_grad()
            loss(discriminator(fake).view(-1), ones).backward()
            opt_g.step()
            average(ema, generator, t)
            t += 1
        generator.eval()
        standing_statistics(ema, seed)
        with torch.no_grad():
            for name, net in (('raw', generator), ('ema', ema)):
                samples['{}{}'.format(name, epoch)] = net(latents).permute(
                    0, 2, 3, 1).numpy().astype(np.float16)
        generator.train()
        print('epoch', epoch, flush=True)
    return samples


if __name__ == '__main__':
    torch.set_num_threads(1)
    np.savez_compressed(sys.argv[2], **train(np.load(sys.argv[1])['images'], int(sys.argv[3]),
                                             int(sys.argv[4]) if len(sys.argv) > 4 else 30))
