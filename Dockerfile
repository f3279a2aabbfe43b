# MTLCC in TensorFlow 2 / Keras 3 on the official TensorFlow 2.21 GPU image (CUDA and cuDNN included).
#
#   docker build -t mtlcc-tf2 .
#   docker run --gpus all -it --rm -v $PWD/data_IJGI18/datasets/demo:/data -v $PWD/tmp:/model mtlcc-tf2
#
# $datadir (/data) and $modeldir (/model) are the mount points of the dataset and the model folders, as in the
# original image; the scripts read $datadir when --datadir is not given. Jupyter serves the notebooks on port 8888.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    datadir=/data \
    modeldir=/model

WORKDIR /MTLCC
COPY . /MTLCC

# The project with its pinned dependencies (TensorFlow 2.21.0 is the image's own and stays), the test and notebook
# tools, and Jupyter; then a check that TensorFlow was not replaced and that the scripts start.
RUN python3 -m pip install -e ".[dev]" notebook==7.6.5 \
 && python3 -c "import tensorflow as tf; assert tf.__version__ == '2.21.0', tf.__version__" \
 && for script in modelzoo/seqencmodel.py train.py init_graph.py compare_graphs.py copy_network_weights.py \
      convert_tf1_model.py evaluate.py activations.py tfrecord2tif.py tif2tfrecord.py predict.py export_model.py; do \
      python3 "$script" --help > /dev/null || exit 1; done \
 && mkdir -p /data /model

EXPOSE 8888
CMD ["/bin/bash"]
