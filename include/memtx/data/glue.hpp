#pragma once
// The GLUE tasks memtx fine-tunes on: RTE, MRPC, CoLA, STS-B, SST-2, QNLI and WNLI, read from the
// task files of the GLUE distribution (`<dir>/<Task>/{train,dev}.tsv`, tab-separated, no
// quoting). Each example is one text or a pair, with a class (0 .. n_labels - 1) or, for STS-B,
// a similarity score in [0, 5]. A line with another number of fields, a label outside the
// task's, or a missing file is a memtx::Error naming the file and line.
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "memtx/core/error.hpp"

namespace memtx {

enum class GlueTask { rte, mrpc, cola, stsb, sst2, qnli, wnli };

struct GlueTaskInfo {
    const char* name;     // as on the command line
    const char* folder;   // in the GLUE distribution
    int n_labels;         // 1: regression (STS-B)
    bool pair;            // two texts per example
    const char* metric;   // what GLUE reports
};

inline GlueTaskInfo glue_task_info(GlueTask t) {
    switch (t) {
    case GlueTask::rte: return {"rte", "RTE", 2, true, "accuracy"};
    case GlueTask::mrpc: return {"mrpc", "MRPC", 2, true, "F1 and accuracy"};
    case GlueTask::cola: return {"cola", "CoLA", 2, false, "Matthews correlation"};
    case GlueTask::stsb: return {"stsb", "STS-B", 1, true, "Pearson and Spearman correlation"};
    case GlueTask::sst2: return {"sst2", "SST-2", 2, false, "accuracy"};
    case GlueTask::qnli: return {"qnli", "QNLI", 2, true, "accuracy"};
    case GlueTask::wnli: return {"wnli", "WNLI", 2, true, "accuracy"};
    }
    throw Error("unknown GLUE task");
}

inline GlueTask parse_glue_task(std::string_view s) {
    for (const GlueTask t : {GlueTask::rte, GlueTask::mrpc, GlueTask::cola, GlueTask::stsb, GlueTask::sst2, GlueTask::qnli,
                             GlueTask::wnli})
        if (s == glue_task_info(t).name || s == glue_task_info(t).folder) return t;
    throw Error(detail::concat("unknown GLUE task '", s, "' (expected rte, mrpc, cola, stsb, sst2, qnli or wnli)"));
}

struct GlueExample {
    std::string a, b;   // b empty for single-text tasks
    int label = 0;      // class; 0 for STS-B
    float score = 0;    // STS-B's similarity in [0, 5]
};

struct GlueData {
    GlueTask task = GlueTask::rte;
    std::filesystem::path file;
    std::vector<GlueExample> examples;
};

namespace detail {
inline std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (std::size_t at = 0;;) {
        const auto tab = line.find('\t', at);
        out.push_back(line.substr(at, tab == std::string_view::npos ? std::string_view::npos : tab - at));
        if (tab == std::string_view::npos) return out;
        at = tab + 1;
    }
}
inline int glue_class(std::string_view s, const std::string& where) {
    if (s == "0") return 0;
    if (s == "1") return 1;
    throw Error(concat(where, ": label '", s, "' is not 0 or 1"));
}
inline int glue_entailment(std::string_view s, const std::string& where) {
    if (s == "entailment") return 0;
    if (s == "not_entailment") return 1;
    throw Error(concat(where, ": label '", s, "' is not entailment or not_entailment"));
}
} // namespace detail

// The train or dev split of a task (the test splits have no labels). glue_dir holds the task
// folders (RTE/, MRPC/, ...).
inline GlueData load_glue(GlueTask task, const std::filesystem::path& glue_dir, std::string_view split) {
    const GlueTaskInfo info = glue_task_info(task);
    require(split == "train" || split == "dev", "GLUE ", info.folder, ": split '", split,
            "' has no labels to read (train or dev; GLUE's test labels are not public)");
    GlueData d;
    d.task = task;
    d.file = glue_dir / info.folder / (std::string(split) + ".tsv");
    std::ifstream in(d.file, std::ios::binary);
    require(in.good(), "GLUE ", info.folder, ": cannot open '", d.file.string(), "'");
    const bool header = task != GlueTask::cola;
    std::size_t line_no = 0;
    for (std::string line; std::getline(in, line);) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line_no == 1 && header) continue;
        if (line.empty()) continue;
        const std::string where = d.file.string() + ":" + std::to_string(line_no);
        const auto f = detail::split_tabs(line);
        const auto fields = [&](std::size_t n) {
            require(f.size() == n, where, ": ", f.size(), " tab-separated fields, ", info.folder, " has ", n);
        };
        GlueExample e;
        switch (task) {
        case GlueTask::cola:   // source, label, original mark, sentence
            fields(4);
            e.label = detail::glue_class(f[1], where);
            e.a = f[3];
            break;
        case GlueTask::sst2:   // sentence, label
            fields(2);
            e.a = f[0];
            e.label = detail::glue_class(f[1], where);
            break;
        case GlueTask::mrpc:   // label, id 1, id 2, sentence 1, sentence 2
            fields(5);
            e.label = detail::glue_class(f[0], where);
            e.a = f[3];
            e.b = f[4];
            break;
        case GlueTask::stsb: {   // index, genre, file, year, old index, source 1, source 2, sentence 1, sentence 2, score
            fields(10);
            e.a = f[7];
            e.b = f[8];
            const auto s = f[9];
            const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), e.score);
            require(err == std::errc() && end == s.data() + s.size() && std::isfinite(e.score) && e.score >= 0 && e.score <= 5,
                    where, ": score '", s, "' is not a number in [0, 5]");
            break;
        }
        case GlueTask::qnli:
        case GlueTask::rte:   // index, text 1, text 2, entailment | not_entailment
            fields(4);
            e.a = f[1];
            e.b = f[2];
            e.label = detail::glue_entailment(f[3], where);
            break;
        case GlueTask::wnli:   // index, sentence 1, sentence 2, label
            fields(4);
            e.a = f[1];
            e.b = f[2];
            e.label = detail::glue_class(f[3], where);
            break;
        }
        d.examples.push_back(std::move(e));
    }
    require(!in.bad(), "GLUE ", info.folder, ": cannot read '", d.file.string(), "'");
    require(!d.examples.empty(), "GLUE ", info.folder, ": '", d.file.string(), "' has no examples");
    return d;
}

} // namespace memtx
