"""h3r: Heatmap Regression via Randomized Rounding (Yu & Tao, TPAMI 2021), as a library.

The core (torch and numpy only):
    geometry     the one coordinate convention (input pixels <-> heatmap units), affine maps
    codecs       every heatmap codec the study compares, H3R among them
    losses       training losses on a codec's target (spatial CE, MSE, binary CE, L1 on coordinates)
    metrics      NME, FR, AUC/CED, PCKh, COCO AP

The study (extras ``[data]``, ``[train]``, ``[book]``):
    data         keypoint layouts and their normalisers, the crops (the official test crop among
                 them), the embedded synthetic benchmark, the real datasets
    protocols    per benchmark: splits, normaliser, metric, input size
    models       HRNet-W18 and MobileNetV2 with heatmap heads; the official checkpoint converter
    zoo          the official model zoo: folders and config.yaml settings
    config       what a run is: Config, the codec presets and their facts, the run folder, the key
                 (torch-free)
    train        the training loop (CPU, GPU, DDP)
    evaluation   predictions and metrics of a model on a test set; official weights
    runs         the run layer: trained once, read back, loaded, re-evaluated; grids in a pool
    stats        mean and spread over seeds, paired differences, verdicts by stated rules
    study        the study's design: which runs answer which claim, and their numbers
    report       the tables and sentences the book shows of the study's numbers
    analysis     codec-only error: each training target decoded by its decoder, no network
    profiles     every chapter's settings per profile (smoke, cpu, paper)
    reported     the numbers reported for H3R, with their sources
    viz          pictures for the book
    provenance   where a number came from; atomic result files
    cli          the ``h3r`` command (``python -m h3r``)
    integrations H3R in other frameworks (mmpose)
    book         book tooling (papermill runner, page check), not library
"""
__version__ = "0.1.0"
