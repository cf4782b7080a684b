"""h3r: Heatmap Regression via Randomized Rounding (Yu & Tao, TPAMI 2021), as a library.

Modules, one concept each:
    geometry   the one coordinate convention (input pixels <-> heatmap units), affine maps
    codecs     every heatmap codec the study compares, H3R among them
    models     HRNet-W18 and MobileNetV2 backbones with heatmap heads; losses
    data       keypoint layouts, the embedded synthetic benchmark, the real datasets
    metrics    NME, FR, AUC/CED, PCKh, COCO AP
    train      the training loop (CPU and GPU) and evaluation
    notebooks  the profile/papermill runner that builds the book
"""
__version__ = "0.1.0"
