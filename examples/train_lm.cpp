// train_lm: trains a Transformer-XL language model with memtx on a corpus, printing one line per
// log interval, validating and checkpointing periodically, and testing at the end.
//
//   train_lm                                   # built-in text, tiny preset, about 15 seconds
//   train_lm --corpus ptb-char --preset small --steps 4000
//   train_lm --data file.txt --kind bytes      # any file, split 90/5/5
//   train_lm --corpus ptb-char --resume        # continue from the newest checkpoint that loads
//   (SIGTERM or Ctrl-C: a checkpoint at the next step, exit 0; --resume continues bit-identically)
//   train_lm --corpus ptb-char --skip-retain --phase1-steps 3000 --cross-head-beta 0.1   # the paper's recipe
//   train_lm --corpus enwik8 --preset enwik8_base --backend cuda --precision bf16   # on a GPU (built when nvcc was found)
//   mpirun -np 4 train_lm --corpus enwik8 --batch 32   # data-parallel on 4 CPU ranks (built when MPI was found)
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "sample_corpus.hpp"
#include "train_lm.hpp"

#ifdef MEMTX_EXAMPLES_MPI
#include <memtx/comm/mpi.hpp>
#endif

namespace fs = std::filesystem;
using memtx_examples::TrainOptions;

namespace {

struct NamedCorpus {
    memtx::CorpusKind kind;
    const char *train, *valid, *test;   // valid/test null: fractions of train
};

std::optional<NamedCorpus> named_corpus(const std::string& name) {
    if (name == "ptb") return NamedCorpus{memtx::CorpusKind::words, "ptb/ptb.train.txt", "ptb/ptb.valid.txt", "ptb/ptb.test.txt"};
    if (name == "ptb-char")
        return NamedCorpus{memtx::CorpusKind::symbols, "ptb-char/ptb.char.train.txt", "ptb-char/ptb.char.valid.txt",
                           "ptb-char/ptb.char.test.txt"};
    if (name == "enwik8") return NamedCorpus{memtx::CorpusKind::bytes, "enwik8-head/enwik8.head", nullptr, nullptr};
    if (name == "enwik8-full") return NamedCorpus{memtx::CorpusKind::bytes, "enwik8/enwik8", nullptr, nullptr};
    if (name == "shakespeare") return NamedCorpus{memtx::CorpusKind::bytes, "tinyshakespeare/input.txt", nullptr, nullptr};
    return std::nullopt;
}

// $MEMTX_DATA_DIR, else ./data (scripts/get_data.sh), else ../shared/data.
fs::path default_data_dir() {
    if (const char* env = std::getenv("MEMTX_DATA_DIR")) return env;
    if (fs::is_directory("data")) return "data";
    return "../shared/data";
}

} // namespace

int main(int argc, char** argv) {
    TrainOptions o;
    auto& t = o.trainer;
    std::string corpus_name = "builtin", kind = "bytes", data_file, train_file, valid_file, test_file, schedule = "cosine";
    std::string data_dir = default_data_dir().string(), out_dir;
    double valid_fraction = 0.05, test_fraction = 0.05;
    t.batch = 16;
    t.tgt_len = 128;
    t.mem_len = 128;
    t.max_step = 2000;
    t.log_interval = 50;
    t.eval_interval = 500;
    t.schedule.lr = 5e-4;
    t.schedule.warmup = 100;
    t.eval = {.batch = 10, .tgt_len = 128, .mem_len = 128};
    // A scheduler's SIGTERM (pre-emption) or Ctrl-C: a checkpoint at the next step boundary and
    // exit 0; --resume continues as if nothing had happened.
    t.checkpoint_on_signal = true;

    CLI::App app{"memtx train_lm: train a Transformer-XL language model"};
    app.option_defaults()->always_capture_default();
    app.add_option("--corpus", corpus_name,
                   "builtin (Tiny Shakespeare, shipped) | sample (4 KB of prose) | ptb | ptb-char | enwik8 | enwik8-full | "
                   "shakespeare (under --data-dir)")
        ->check(CLI::IsMember({"builtin", "sample", "ptb", "ptb-char", "enwik8", "enwik8-full", "shakespeare"}));
    app.add_option("--data-dir", data_dir, "folder of the named corpora ($MEMTX_DATA_DIR, ./data or ../shared/data)");
    app.add_option("--data", data_file, "one text file, split into train/valid/test by the fractions");
    app.add_option("--train", train_file, "training file (with --valid and --test)");
    app.add_option("--valid", valid_file, "validation file");
    app.add_option("--test", test_file, "test file");
    app.add_option("--kind", kind, "token kind of --data/--train: bytes | symbols | words")
        ->check(CLI::IsMember({"bytes", "symbols", "chars", "words"}));
    app.add_option("--valid-fraction", valid_fraction, "fraction of a single file used for validation")->check(CLI::Range(0.0, 0.5));
    app.add_option("--test-fraction", test_fraction, "fraction of a single file used for test")->check(CLI::Range(0.0, 0.5));
    app.add_option("--preset", o.preset, "model: tiny (2x128) | small (4x256) | six_layer (6x128, CPU) | enwik8_base (12x512)")
        ->check(CLI::IsMember({"tiny", "small", "six_layer", "enwik8_base"}));
    app.add_option("--batch", t.batch, "sequences per step")->check(CLI::Range(1, 4096));
    app.add_option("--batch-chunk", t.batch_chunk, "split each batch into this many chunks (gradient accumulation)")
        ->check(CLI::Range(1, 4096));
    app.add_option("--tgt-len", t.tgt_len, "segment length")->check(CLI::Range(1, 65536));
    app.add_option("--mem-len", t.mem_len, "memory length")->check(CLI::Range(0, 65536));
    app.add_option("--clamp-len", t.clamp_len, "clamp relative distances (0: off)")->check(CLI::Range(0, 1 << 20));
    app.add_flag("--same-length", t.same_length, "every query sees the same number of keys");
    app.add_option("--steps", t.max_step, "optimizer steps (also the cosine schedule's length)")->check(CLI::Range(1LL, 1LL << 40));
    app.add_option("--lr", t.schedule.lr, "peak learning rate")->check(CLI::Range(1e-8, 1.0));
    app.add_option("--warmup", t.schedule.warmup, "linear warmup steps")->check(CLI::Range(0LL, 1LL << 40));
    app.add_option("--eta-min", t.schedule.eta_min, "final learning rate of the cosine schedule")->check(CLI::Range(0.0, 1.0));
    app.add_option("--schedule", schedule, "cosine | constant")->check(CLI::IsMember({"cosine", "constant"}));
    app.add_option("--clip", t.adam.clip, "gradient clipping by global norm (0: off)")->check(CLI::Range(0.0, 1e6));
    app.add_option("--dropout", o.dropout, "dropout")->check(CLI::Range(0.0, 0.95));
    app.add_option("--dropatt", o.dropatt, "attention dropout")->check(CLI::Range(0.0, 0.95));
    app.add_option("--log-interval", t.log_interval, "steps per progress line")->check(CLI::Range(1, 1 << 30));
    app.add_option("--eval-interval", t.eval_interval, "steps per validation and checkpoint")->check(CLI::Range(1, 1 << 30));
    app.add_option("--eval-batch", t.eval.batch, "evaluation batch")->check(CLI::Range(1, 4096));
    app.add_option("--eval-tgt-len", t.eval.tgt_len, "evaluation segment length")->check(CLI::Range(1, 65536));
    app.add_option("--eval-mem-len", t.eval.mem_len, "evaluation memory length")->check(CLI::Range(0, 65536));
    app.add_option("--eval-clamp-len", t.eval.clamp_len, "evaluation clamp_len")->check(CLI::Range(0, 1 << 20));
    app.add_flag("--eval-same-length", t.eval.same_length, "same_length at evaluation");
    app.add_option("--eval-max-segments", t.eval.max_segments, "evaluate at most this many segments (-1: all)");
    app.add_option("--out", out_dir, "run folder: checkpoints and metrics.jsonl (default runs/<corpus>-<preset>)");
    app.add_option("--keep", t.keep_checkpoints, "checkpoints kept (plus best)")->check(CLI::Range(1, 1000));
    app.add_flag("--resume", t.resume, "continue from the newest checkpoint in the run folder");
    std::string skip_schedule = "linear";
    double skip_p = 0.0;
    std::vector<double> skip_probs;
    app.add_flag("--skip-retain", t.methods.skip_retain, "phase 1: Skip-Retain (skipped layers keep their old memory)");
    app.add_option("--skip-schedule", skip_schedule, "linear (paper: p_i = 0.5 i / N, last layer 0) | uniform | custom")
        ->check(CLI::IsMember({"linear", "uniform", "custom"}));
    app.add_option("--skip-p", skip_p, "skip probability of every layer with --skip-schedule uniform")->check(CLI::Range(0.0, 0.999));
    app.add_option("--skip-probs", skip_probs, "one skip probability per layer with --skip-schedule custom")->delimiter(',');
    std::string skipped_layers = "freeze";
    app.add_option("--skipped-layers", skipped_layers,
                   "what Adam does with a skipped layer: freeze (no update, no step counted) | zero-grad (a step with a zero "
                   "gradient: momentum moves it, the step counts; the authors' PyTorch 1.5)")
        ->check(CLI::IsMember({"freeze", "zero-grad"}));
    app.add_option("--phase1-steps", t.methods.phase1_steps, "switch to phase 2 (vanilla) after this many steps")
        ->check(CLI::Range(0LL, 1LL << 40));
    std::string phase2_from = "last";
    app.add_option("--phase2-from", phase2_from,
                   "phase 2 starts from the last phase-1 weights and Adam state, or from those of phase 1's best validation "
                   "(the authors' recipe)")
        ->check(CLI::IsMember({"last", "best"}));
    app.add_option("--phase1-patience", t.methods.phase1_patience, "switch to phase 2 when validation has not improved this many times")
        ->check(CLI::Range(0, 1 << 20));
    app.add_option("--cross-head-beta", t.methods.cross_head_beta, "probability of a head permutation per layer per step (paper: 0.1)")
        ->check(CLI::Range(0.0, 1.0));
    app.add_flag("--reach", t.reach, "report each layer's attention reach on the validation split at the end");
    app.add_option("--backend", o.backend, "cpu | cuda (TransformerXL<Shape, memtx::Cuda>, fp32)")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    app.add_option("--device", o.device, "CUDA device with --backend cuda")->check(CLI::Range(0, 1023));
    app.add_option("--precision", o.precision, "with --backend cuda: fp32 | bf16 (bf16 activations and weight copies, fp32 masters)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--seed", o.seed, "seed of initialisation and every random decision");
    app.add_option("--sample", o.sample.tokens, "tokens to sample from the trained model at the end (0: none)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_option("--prompt", o.sample.prompt, "text the end-of-run sample continues");
    app.add_option("--threads", t.threads, "CPU threads (0: all cores)")->check(CLI::Range(0, 1024));
    app.add_option("--check-replicas", t.check_replicas_every,
                   "under mpirun: compare every rank's parameters and Adam moments with rank 0's every this many steps "
                   "(0: once, at the start)")
        ->check(CLI::Range(0, 1 << 30));
    double bucket_mb = static_cast<double>(t.reduce_bucket_bytes) / (1 << 20);
    app.add_option("--reduce-bucket-mb", bucket_mb,
                   "under mpirun: sum the gradients across ranks in buckets of this many MiB, each started as the backward "
                   "finishes it (0: one sum after the backward)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1e6));
    CLI11_PARSE(app, argc, argv);
    t.reduce_bucket_bytes = static_cast<std::size_t>(bucket_mb * (1 << 20));

    // Under mpirun (or another MPI launcher): data-parallel, each rank a slice of every batch.
#ifdef MEMTX_EXAMPLES_MPI
    std::optional<memtx::MpiSession> mpi_session;
    std::optional<memtx::MpiCommunicator> mpi;
#endif
    std::optional<memtx::AnyCommunicator> comm;
    int rank = 0, ranks = 1;
    try {
#ifdef MEMTX_EXAMPLES_MPI
        if (memtx::MpiSession::launched()) {
            mpi_session.emplace(&argc, &argv);
            mpi.emplace();
            comm.emplace(*mpi);
            rank = comm->rank();
            ranks = comm->size();
            o.comm = &*comm;
        }
#else
        const char* world = std::getenv("OMPI_COMM_WORLD_SIZE");
        memtx::require(world == nullptr || std::string(world) == "1", "train_lm was started by mpirun with ", world ? world : "",
                       " ranks, but it was built without MPI (install libopenmpi-dev and rebuild)");
#endif
        t.schedule.kind = memtx::parse_schedule(schedule);
        t.methods.skip = {memtx::parse_skip_schedule(skip_schedule), skip_p, skip_probs,
                          memtx::parse_skipped_layers(skipped_layers)};
        t.methods.phase2_from = memtx::parse_phase2_start(phase2_from);
        if (t.eval.mem_len > 0 && !app.count("--eval-mem-len")) t.eval.mem_len = t.mem_len;
        if (!app.count("--eval-tgt-len")) t.eval.tgt_len = t.tgt_len;
        memtx::Corpus corpus;
        const bool named = data_file.empty() && train_file.empty();
        if (named && corpus_name == "builtin") {
            // The first run: Tiny Shakespeare, shipped with the examples, on the tiny preset;
            // validation BPC falls steadily for the whole run (docs/results.md, "The first run").
            if (!app.count("--batch")) t.batch = 16;
            if (!app.count("--tgt-len")) t.tgt_len = t.eval.tgt_len = 64;
            if (!app.count("--mem-len")) t.mem_len = t.eval.mem_len = 64;
            if (!app.count("--steps")) t.max_step = 3000;
            if (!app.count("--eval-interval")) t.eval_interval = 1000;
            if (!app.count("--log-interval")) t.log_interval = 250;
            if (!app.count("--lr")) t.schedule.lr = 2e-3;
            if (!app.count("--warmup")) t.schedule.warmup = 100;
            if (!app.count("--dropout")) o.dropout = 0.0f;   // 0.46M parameters underfit 1 MB: dropout only slows them
            if (!app.count("--eval-batch")) t.eval.batch = 8;
            if (!app.count("--sample")) o.sample.tokens = 400;
            if (!app.count("--prompt")) o.sample.prompt = "ROMEO:\n";
            const fs::path file = MEMTX_BUILTIN_CORPUS;
            memtx::require(fs::exists(file), "the built-in corpus is missing at ", file.string(),
                           " (it ships with the source tree in examples/data/): use --corpus sample or --data FILE");
            corpus = memtx::load_corpus({memtx::CorpusKind::bytes, file, {}, {}, valid_fraction, test_fraction});
            corpus.name = "Tiny Shakespeare";
        } else if (named && corpus_name == "sample") {
            // Small defaults that fit the 4 KB sample and finish in seconds (the tests use it).
            if (!app.count("--batch")) t.batch = 8;
            if (!app.count("--tgt-len")) t.tgt_len = t.eval.tgt_len = 64;
            if (!app.count("--mem-len")) t.mem_len = t.eval.mem_len = 64;
            if (!app.count("--steps")) t.max_step = 1000;
            if (!app.count("--eval-interval")) t.eval_interval = 250;
            if (!app.count("--log-interval")) t.log_interval = 100;
            if (!app.count("--lr")) t.schedule.lr = 2e-3;
            if (!app.count("--warmup")) t.schedule.warmup = 20;
            if (!app.count("--eval-batch")) t.eval.batch = 1;
            corpus = memtx::corpus_from_text(memtx_examples::kSampleCorpus, memtx::CorpusKind::bytes, valid_fraction,
                                             test_fraction, "sample text");
        } else if (!data_file.empty()) {
            memtx::CorpusSpec spec{memtx::parse_corpus_kind(kind), data_file, {}, {}, valid_fraction, test_fraction};
            corpus = memtx::load_corpus(spec);
            corpus_name = fs::path(data_file).stem().string();
        } else if (!train_file.empty()) {
            memtx::CorpusSpec spec{memtx::parse_corpus_kind(kind), train_file, valid_file, test_file};
            corpus = memtx::load_corpus(spec);
            corpus_name = fs::path(train_file).stem().string();
        } else {
            const auto nc = *named_corpus(corpus_name);
            const fs::path dir(data_dir);
            memtx::CorpusSpec spec{nc.kind, dir / nc.train, nc.valid ? dir / nc.valid : fs::path{}, nc.test ? dir / nc.test : fs::path{},
                                   valid_fraction, test_fraction};
            memtx::require(fs::exists(spec.train), "corpus '", corpus_name, "' not found at ", spec.train.string(),
                           ": run scripts/get_data.sh, or point --data-dir (or MEMTX_DATA_DIR) at the data");
            corpus = memtx::load_corpus(spec);
        }
        const fs::path out = out_dir.empty() ? fs::path("runs") / (corpus_name + "-" + o.preset) : fs::path(out_dir);
        t.checkpoint_dir = out / "checkpoints";
        t.metrics_file = out / "metrics.jsonl";
        // a fresh run starts a fresh file (rank 0 writes it)
        if (rank == 0 && !t.resume && fs::exists(t.metrics_file)) fs::remove(t.metrics_file);
        if (rank == 0) std::printf("run folder %s\n", out.string().c_str());
        memtx::require(o.backend == "cuda" || o.precision == "fp32", "--precision ", o.precision,
                       " is for --backend cuda (the CPU trains in fp32)");
        if (o.backend == "cuda") {
#ifdef MEMTX_EXAMPLES_CUDA
            return memtx_examples::run_cuda(o, corpus);
#else
            throw memtx::Error("this train_lm was built without the CUDA backend (no nvcc at configure time): use --backend cpu, "
                               "or rebuild with a CUDA toolkit");
#endif
        }
        if (o.preset == "tiny") return memtx_examples::run_tiny(o, corpus);
        if (o.preset == "small") return memtx_examples::run_small(o, corpus);
        if (o.preset == "six_layer") return memtx_examples::run_six_layer(o, corpus);
        return memtx_examples::run_enwik8_base(o, corpus);
    } catch (const memtx::Error& e) {
        if (ranks > 1) std::cerr << "error on rank " << rank << " of " << ranks << ": " << e.what() << std::endl;
        else std::cerr << "error: " << e.what() << "\n";
#ifdef MEMTX_EXAMPLES_MPI
        if (ranks > 1) mpi_session->abort(2);   // the other ranks stop too, instead of waiting in a collective
#endif
        return 2;
    }
}
