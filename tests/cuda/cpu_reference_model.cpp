#include "cpu_reference_model.hpp"

#include <memtx/memtx.hpp>

namespace memtx::testref {

template <ModelShape S>
testcases::ModelRun model_cpu(const testcases::ModelCase& c) {
    TransformerXL<S> model({.seed = 7, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.1f});
    auto mem = model.make_memory(c.batch, c.mem_len);
    testcases::ModelRun run;
    const testcases::CaseSteps case_steps(c, S.n_layer);
    const int n = c.batch * c.tgt_len;
    for (int t = 0; t < c.steps; ++t) {
        const auto x = testcases::case_tokens(n, S.vocab, 7, t, false), y = testcases::case_tokens(n, S.vocab, 7, t, true);
        const StepOptions opt = case_steps.options(t);
        model.zero_grad();
        run.losses.push_back(model.forward_backward(x, y, mem, opt).mean);
        run.grads.insert(run.grads.end(), model.gradients().begin(), model.gradients().end());
    }
    for (int l = 0; l < S.n_layer; ++l) {
        run.rows.push_back(mem.rows(l));
        run.ages.push_back(mem.age(l));
    }
    run.memory.assign(mem.data(0, 0), mem.data(0, 0) + static_cast<std::size_t>(S.n_layer) * c.batch * c.mem_len * S.d_model);
    return run;
}

template <ModelShape S>
std::vector<float> logits_cpu(const testcases::ModelCase& c) {
    TransformerXL<S> model({.seed = 7, .init_std = 0.1f});
    auto mem = model.make_memory(c.batch, c.mem_len);
    return testcases::case_logits(model, mem, c);
}

template <ModelShape S>
std::vector<float> train_cpu(const testcases::ModelCase& c) {
    TransformerXL<S> model({.seed = 7, .dropout = c.dropout, .dropatt = c.dropatt, .init_std = 0.1f});
    Adam<float> opt(model, {.lr = 1e-3, .clip = 0.25});
    auto mem = model.make_memory(c.batch, c.mem_len);
    const testcases::CaseSteps case_steps(c, S.n_layer);
    const int n = c.batch * c.tgt_len;
    for (int t = 0; t < c.steps; ++t) {
        const auto x = testcases::case_tokens(n, S.vocab, 7, t, false), y = testcases::case_tokens(n, S.vocab, 7, t, true);
        const StepOptions opt_step = case_steps.options(t);
        train_step(model, opt, x, y, mem, opt_step);
    }
    return {model.parameters().begin(), model.parameters().end()};
}

testcases::TrainerRun trainer_cpu(const TrainerConfig& config, long long until) {
    const Corpus corpus = testcases::trainer_corpus();
    TransformerXL<testcases::kTrainerShape> model(testcases::trainer_model_options());
    Trainer<TransformerXL<testcases::kTrainerShape>> trainer(model, corpus, config);
    return testcases::run_trainer(model, trainer, until);
}

template std::vector<float> train_cpu<testcases::kModelPostLN>(const testcases::ModelCase&);
template testcases::ModelRun model_cpu<testcases::kModelPostLN>(const testcases::ModelCase&);
template testcases::ModelRun model_cpu<testcases::kModelPreLN>(const testcases::ModelCase&);
template std::vector<float> logits_cpu<testcases::kModelPostLN>(const testcases::ModelCase&);
template std::vector<float> logits_cpu<testcases::kModelPreLN>(const testcases::ModelCase&);

} // namespace memtx::testref
