"""radconf: radiotherapy auto-contouring on top of nnU-Net v2.

The installed import names all live under ``radconf``: the top-level folders ``planners/``, ``trainers/`` and
``datasets/`` are installed as ``radconf.planners``, ``radconf.trainers`` and ``radconf.datasets`` so that no
generic top-level module names land in site-packages.
"""
from setuptools import setup

PACKAGE_DIRS = {
    "radconf": "radconf",
    "radconf.planners": "planners",
    "radconf.trainers": "trainers",
    "radconf.datasets": "datasets",
    "radconf.datasets.phantom": "datasets/phantom",
}

ENTRY_POINTS = [
    "radconf_plan_and_preprocess = radconf.cli.plan_and_preprocess:main",
    "radconf_train = radconf.cli.train:main",
    "radconf_predict = radconf.cli.predict:main",
    "radconf_evaluate = radconf.cli.evaluate:main",
    "radconf_compare = radconf.cli.compare:main",
    "radconf_demo = radconf.cli.demo:main",
    "radconf_generate_phantom = radconf.cli.generate_phantom:main",
    "radconf_fuse_readers = radconf.cli.fuse_readers:main",
    "radconf_anatomy_dataset = radconf.cli.anatomy_dataset:main",
    "radconf_find_ensemble_weights = radconf.cli.find_ensemble_weights:main",
    "radconf_ensemble = radconf.cli.ensemble:main",
    "radconf_import_dicom = radconf.cli.import_dicom:main",
    "radconf_export_dicom = radconf.cli.export_dicom:main",
    "radconf_partial_labels = radconf.cli.partial_labels:main",
    "radconf_merge_labels = radconf.cli.merge_labels:main",
    "radconf_crop_dataset = radconf.cli.crop_dataset:main",
    "radconf_determine_postprocessing = radconf.cli.determine_postprocessing:main",
    "radconf_apply_postprocessing = radconf.cli.apply_postprocessing:main",
    "radconf_margin = radconf.cli.margin:main",
    "radconf_calibrate = radconf.cli.calibrate:main",
]

setup(
    name="radconf",
    version="0.1.0",
    description="Self-configuring radiotherapy auto-contouring built on nnU-Net v2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"radconf": ["py.typed"]},
    install_requires=[
        # radconf subclasses nnU-Net's planners/trainers and calls its internals (plans layout, predictor
        # initialisation, run_training helpers); those change between minor releases, so pin to 2.8.x.
        "nnunetv2>=2.8.1,<2.9",
        "torch>=2.1",
        "batchgenerators>=0.25",
        "batchgeneratorsv2>=0.3,<0.4",
        "dynamic-network-architectures>=0.4,<0.5",
        "acvl-utils>=0.2,<0.3",
        "SimpleITK>=2.2",
        "numpy>=1.24",
        "scipy>=1.10",
        "edt>=2.3",  # exact anisotropic distance transforms, multi-threaded (distance-head targets, contour operations)
        "connected-components-3d>=3.12",  # cc3d: connected components of the contour operations (also nnU-Net's)
        "matplotlib>=3.6",
        "tqdm>=4.60",
        # DICOM-RT exchange: CT series and RTSTRUCT (pydicom), DICOM-SEG (highdicom), Slicer .seg.nrrd (slicerio)
        "pydicom>=3.0,<4",
        "highdicom>=0.28,<0.29",
        "slicerio>=1.4",
        "pynrrd>=1.0",
        # the papers' 2D networks (ResNet34-FPN, DeepLabv3+); adds only itself beside nnU-Net's timm/torchvision
        "segmentation-models-pytorch>=0.5,<0.7",
    ],
    extras_require={
        # test-only oracles: surface-distance and MONAI (surface metrics), statsmodels (FDR corrections),
        # dcmrtstruct2nii (RTSTRUCT rasterisation)
        # pytest-xdist: the suite runs on two worker processes (each builds its own session fixtures)
        "test": ["pytest>=7", "pytest-xdist>=3", "surface-distance==0.1", "statsmodels>=0.14", "monai>=1.3",
                 "dcmrtstruct2nii==5"],
        # peers measured in benchmarks/
        "benchmark": ["monai>=1.3", "surface-distance==0.1", "dcmrtstruct2nii==5", "rt-utils==1.2.7"],
    },
    entry_points={"console_scripts": ENTRY_POINTS},
)
