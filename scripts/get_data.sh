#!/usr/bin/env bash
# Downloads the standard corpora into ./data (or $1) when online:
#   ptb/       Penn Treebank, word level (Mikolov's simple-examples release)
#   ptb-char/  Penn Treebank, character level (same release)
#   enwik8/    enwik8, the Hutter-prize Wikipedia dump (100 MB)
#   tinyshakespeare/
# The example trainer finds them with --corpus ptb | ptb-char | enwik8-full | shakespeare.
set -euo pipefail
dest=${1:-data}
mkdir -p "$dest"
cd "$dest"

fetch() {   # url file
  if [ -s "$2" ]; then echo "have $2"; return; fi
  echo "downloading $1"
  curl -fL --retry 3 -o "$2.part" "$1" && mv "$2.part" "$2"
}

if [ ! -s ptb/ptb.train.txt ] || [ ! -s ptb-char/ptb.char.train.txt ]; then
  fetch http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz simple-examples.tgz
  tar -xzf simple-examples.tgz ./simple-examples/data/
  mkdir -p ptb ptb-char
  for s in train valid test; do
    cp "simple-examples/data/ptb.$s.txt" ptb/
    cp "simple-examples/data/ptb.char.$s.txt" ptb-char/
  done
  rm -rf simple-examples simple-examples.tgz
fi

if [ ! -s enwik8/enwik8 ]; then
  mkdir -p enwik8
  fetch http://mattmahoney.net/dc/enwik8.zip enwik8/enwik8.zip
  (cd enwik8 && unzip -o -q enwik8.zip && rm enwik8.zip)
fi

mkdir -p tinyshakespeare
fetch https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt tinyshakespeare/input.txt

echo "corpora in $(pwd)"
