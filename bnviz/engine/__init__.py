"""The backend: everything that trains, records and stores a run, importable without Streamlit or Plotly.

    config          RunConfig, every knob of a run, validated (ConfigError)
    data            Dataset, the built-in sets (digits, shapes), load_dataset, BatchStream
    downloads       MNIST, Fashion-MNIST and CIFAR-10 files: tables, SHA-256 checks, downloads, parsing
    uploads         your own images (path or upload) -> UserImages; upload_archives (zip or folder of class
                    folders), upload_arrays (NPZ, CSV), user_images (UserImages, its split, the limits)
    models          the CNN and MLP a RunConfig describes, noisy batch norm, shared initial weights
    batchnorm       batch norm written out step by step (bn_impl="scratch"), the same maths as torch's
    targets         which layers to record (the app's models, or any nn.Module for bnviz.watch)
    recorder        hooks -> per-step statistics; stats the numpy maths behind them
    history         the bounded columnar store of those statistics, saved and loaded without pickle
    runfile         one or more runs as a zip to download and open again (RunFileError)
    trainer         Run (one model step by step) and Job (a thread: one run or twins in lockstep)
    twins           what two runs of a Job share: initial weights, batches (rules and a sentence for the pages)
    batch_renorm    Batch Renormalization (Ioffe 2017) and its r_max/d_max schedule, from scratch
    folding         batch norm folded into the layer before it (eval mode): fold_batch_norm, fold_model
    jobs            a browser session's Lab and the server-wide cap on training jobs (ServerBusy)
    shift           internal covariate shift measures (distribution drift, Santurkar et al.'s gradient ICS)
    example_models  plain PyTorch models (ResNet-18-shaped, MLPs) for bnviz.watch's tests, bench and notebook

Nothing here imports bnviz.science, bnviz.figures or bnviz.ui. A user's mistake is raised as a bnviz.errors
kind; a failure inside a training thread is reported on the job (`Job.error`).
"""
