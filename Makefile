# The two entry points of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA := data/synthetic
SCENE := data/scene480
RUN := tmp/demo

.PHONY: install demo test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The demo: the original README's sequence on the synthetic data, with a ConvGRU of 64 filters trained briefly
# with the original's optimizer defaults (lr 0.01, epsilon 0.9) and batch-norm statistics re-estimated before every
# validation and checkpoint. About 10 minutes on a 2-core CPU. DEMO_EPOCHS and DEMO_TRAIN_FLAGS change the training
# (e.g. DEMO_TRAIN_FLAGS="--learning_rate 2e-3 --epsilon 1e-7 --schedule cosine"); the hour-long model of
# benchmarks/RESULTS.md "Learning" is trained by: python benchmarks/learning.py --runs precise
DEMO_EPOCHS ?= 5
DEMO_TRAIN_FLAGS ?=
TILE = $$(head -n 1 $(DATA)/480/tileids/eval.tileids)

demo: $(STAMP)
	rm -rf $(RUN)
	@echo "== 1/9 the synthetic dataset (generated on first use in $(DATA)) read back through the pipeline"
	datadir= $(PY) -m utils.dataset
	@echo "== 2/9 a ConvGRU network for 24 px tiles"
	$(PY) modelzoo/seqencmodel.py --modelfolder $(RUN)/convgru64 --convrnn_filters 64 --convcell gru \
		--num_classes 17 --pix10m 24
	@echo "== 3/9 training with the original optimizer defaults, $(DEMO_EPOCHS) epochs of both years, precise batch norm"
	$(PY) train.py $(RUN)/convgru64 --datadir $(DATA)/240 --temporal_samples 30 --epochs $(DEMO_EPOCHS) \
		--shuffle True --batchsize 4 --train_on 2016 2017 --seed 0 --summary_frequency 86 --save_frequency 86 \
		--bn_recalibration_batches 16 $(DEMO_TRAIN_FLAGS)
	@echo "== 4/9 evaluation on the 24 px eval tiles of 2016: GeoTIFFs, PNG maps, metrics"
	$(PY) evaluate.py $(RUN)/convgru64 --datadir $(DATA)/240 --storedir $(RUN)/eval24 --writetiles \
		--batchsize 8 --dataset 2016
	@echo "== 5/9 the 48 px network with the 24 px weights"
	$(PY) modelzoo/seqencmodel.py --modelfolder $(RUN)/convgru64_48px --convrnn_filters 64 --convcell gru \
		--num_classes 17 --pix10m 48
	$(PY) init_graph.py $(RUN)/convgru64_48px/graph.meta
	$(PY) compare_graphs.py $(RUN)/convgru64 $(RUN)/convgru64_48px
	$(PY) copy_network_weights.py $(RUN)/convgru64 $(RUN)/convgru64_48px
	@echo "== 6/9 evaluation on the 48 px eval tiles of 2016, merged into mosaics"
	$(PY) evaluate.py $(RUN)/convgru64_48px --datadir $(DATA)/480 --storedir $(RUN)/eval48 --mosaic \
		--batchsize 4 --dataset 2016
	@echo "== 7/9 activations of the recurrent cell on one 48 px tile"
	$(PY) activations.py $(RUN)/convgru64_48px $(DATA)/480 $(RUN)/activations --dataset 2016 --partition eval \
		--tile $(TILE) --channels 0-3
	@echo "== 8/9 the same tile as per-date GeoTIFFs"
	$(PY) tfrecord2tif.py $(DATA)/480/data16/$(TILE).tfrecord.gz --geotransforms $(DATA)/480/geotransforms.csv \
		--outdir $(RUN)/geotiff
	@echo "== 9/9 a seamless map of a synthetic area from its Sentinel-2 band files and SAFE product (written once in $(SCENE))"
	test -d $(SCENE) || $(PY) -m utils.synthetic --scene $(SCENE) --size 480
	$(PY) predict.py $(RUN)/convgru64_48px $(SCENE) --outdir $(RUN)/map --labels $(SCENE)/truth.tif
	@echo "== done. Outputs in $(RUN)/:"
	@echo "   convgru64/            model folder: params.ini, checkpoints, training_log.csv, TensorBoard runs"
	@echo "                         (tensorboard --logdir $(RUN)/convgru64)"
	@echo "   eval24/, eval48/      metrics.json, classification_report.txt, confusion_matrix.png, png/ maps,"
	@echo "                         per-tile GeoTIFFs; eval48/prediction.tif etc. are Cloud-Optimized mosaics"
	@echo "   activations/sample0/  gate PNGs and GIFs per date and direction, arrays/*.npy"
	@echo "   geotiff/              per-date 10/20/60 m GeoTIFFs and labels.tif of tile $(TILE)"
	@echo "   map/                  classes.tif, confidence.tif (COGs), classes.png and summary.json of $(SCENE)"

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The edit-test loop: everything but the tests marked slow (processes, notebooks, learning); under 2 minutes.
test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(RUN) .pytest_cache .ruff_cache
