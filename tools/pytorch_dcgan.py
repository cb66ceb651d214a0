"""The recipe of pytorch/examples' dcgan at the width of main.py --filters=256 (G 256-128-64 at
32 px), for the comparison in docs/recipes.md: constant learning rate 2e-4, Adam (0.5, 0.999),
N(0, 0.02) initialisation, D's update then G's on the same fakes, ReLU in G, no Dropout, no
Dense layer in D. Needs PyTorch (pip install torch; not a project dependency) and the images
that python -m tools.recipes exports; writes 1,797 samples every 5 epochs for tools.recipes.

python tools/pytorch_dcgan.py IMAGES.npz OUT.npz SEED [EPOCHS]   (about 25 minutes on 1 core)
"""
import sys

import numpy as np
import torch
from torch import nn

NOISE_DIM, BATCH, SAMPLES = 100, 32, 1797


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


def train(images, seed, epochs):
    """Train on images [N, 32, 32, 1] in [-1, 1]; {'eval5': samples, ...} every 5 epochs."""
    torch.manual_seed(seed)
    x = torch.tensor(images).permute(0, 3, 1, 2).float()
    generator, discriminator = networks()
    loss = nn.BCELoss()
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    latents = torch.randn(SAMPLES, NOISE_DIM, 1, 1, generator=torch.Generator().manual_seed(seed))
    samples = {}
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
        if epoch % 5 == 0:
            generator.eval()
            with torch.no_grad():
                samples['eval{}'.format(epoch)] = generator(latents).permute(0, 2, 3, 1).numpy()
            generator.train()
            print('epoch', epoch, flush=True)
    return samples


if __name__ == '__main__':
    torch.set_num_threads(1)
    np.savez(sys.argv[2], **train(np.load(sys.argv[1])['images'], int(sys.argv[3]),
                                  int(sys.argv[4]) if len(sys.argv) > 4 else 30))
