"""The papers' numbers and claims, shown next to ours: sources, claims, SCIENCE.md's small versions, Wu & He's table."""

from __future__ import annotations

import pandas as pd

WU_HE_BATCH_SIZES = (32, 16, 8, 4, 2)
PUBLISHED = {
    "figure1": {
        "source": "Ioffe & Szegedy (2015), section 4.1 and Figure 1: 28x28 binary MNIST, 3x100 sigmoid MLP, "
                  "batch 60, 50,000 steps, small random Gaussian initial weights (no learning rate or optimizer "
                  "given)",
        "claim": "Without BN the percentiles of one typical sigmoid input of the last hidden layer drift in mean "
                 "and spread; with BN they are \"much more stable\" (γ and β can still move them), and BN reaches "
                 "a higher test accuracy sooner. The paper gives no number for the drift.",
    },
    "santurkar": {
        "source": "Santurkar, Tsipras, Ilyas & Madry (2018), 'How does batch normalization help optimization?', "
                  "VGG on CIFAR-10",
        "claim": "(a) Noisy BN (injected, moving distribution shift after every BN layer) trains about as well as "
                 "BN. (b) Their gradient ICS (||G - G'||, cos(G, G')) is not smaller with BN. (c) With BN the loss "
                 "landscape along the gradient is smoother: smaller loss variation and gradient change.",
    },
    "lr_sweep": {
        "source": "Ioffe & Szegedy (2015); Bjorck et al. (2018), 'Understanding batch normalization'",
        "claim": "BN allows much higher learning rates (Ioffe & Szegedy). Without BN, large updates make the "
                 "activations and the loss diverge as depth grows; BN's gain in generalization comes through the "
                 "larger learning rates it allows (Bjorck et al.).",
        "small_version": "SCIENCE.md, 6x64 ReLU MLP on digits, 1,000 steps: without BN lr 1.0 and 3.0 fail (a run "
                         "may learn a little, then diverge or fall back to chance); with BN they reach about 0.98. "
                         "At lr 0.01 no BN is also near chance, from slow convergence, not intolerance.",
    },
    "init_sweep": {
        "source": "Ioffe & Szegedy (2015), section 3.3",
        "claim": "BN makes training less sensitive to the scale of the initial weights.",
        "small_version": "SCIENCE.md, sigmoid 3x100, weights ~ N(0, s^2): without BN s = 0.01 stays at chance "
                         "and s = 5 degrades; with BN every s trains.",
    },
    "batch_size": {
        "source": "Wu & He (2018), 'Group Normalization', ResNet-50 on ImageNet, top-1 error (%) by images per GPU",
        "claim": "BN's error grows as the batch shrinks (23.6% at 32 images per GPU, 34.7% at 2); GN's does not "
                 "(24.0-24.2%). Their BN averages over B x H x W values per channel.",
    },
}
WU_HE_TABLE = pd.DataFrame({
    "batch_size": list(WU_HE_BATCH_SIZES),
    "BN top-1 error (%)": [23.6, 23.7, 24.8, 27.3, 34.7],
    "GN top-1 error (%)": [24.1, 24.2, 24.0, 24.2, 24.1],
})
