// Bad input gets a memtx::Error that names the problem: token ids, segment shapes, options and
// weight files that do not fit the model.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <memtx/memtx.hpp>

using Catch::Matchers::Contains;

namespace {
constexpr memtx::ModelShape tiny{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 4, .d_inner = 16, .vocab = 10};
constexpr memtx::ModelShape tiny_untied{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 4, .d_inner = 16, .vocab = 10,
                                        .tie_weight = false};
constexpr memtx::ModelShape other{.n_layer = 2, .d_model = 8, .n_head = 2, .d_head = 4, .d_inner = 16, .vocab = 12};

std::filesystem::path temp_dir() {
    auto d = std::filesystem::temp_directory_path() / ("memtx_bad_input_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
}
} // namespace

TEST_CASE("token ids outside the vocabulary are rejected", "[bad_input]") {
    memtx::TransformerXL<tiny> model;
    auto mem = model.make_memory(2, 4);
    std::vector<std::int32_t> x{1, 2, 3, 4}, y{1, 2, 3, 4};
    memtx::StepOptions opt;
    SECTION("input id == vocab") {
        x[2] = 10;
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Contains("input token id 10 at (row 1, column 0)") && Contains("[0, 10)"));
    }
    SECTION("negative target id") {
        y[3] = -1;
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Contains("target token id -1 at (row 1, column 1)"));
    }
    SECTION("the memory is untouched by a rejected call") {
        x[0] = 99;
        CHECK_THROWS_AS(model.evaluate(x, y, mem, opt), memtx::Error);
        CHECK(mem.rows(0) == 0);
    }
}

TEST_CASE("segment shapes that make no sense are rejected", "[bad_input]") {
    memtx::TransformerXL<tiny> model;
    memtx::StepOptions opt;
    SECTION("tgt_len 0") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> none;
        CHECK_THROWS_WITH(model.forward_backward(none, none, mem, opt), Contains("tgt_len must be positive"));
    }
    SECTION("batch 0") { CHECK_THROWS_WITH(model.make_memory(0, 4), Contains("batch must be positive")); }
    SECTION("negative mem_len") { CHECK_THROWS_WITH(model.make_memory(2, -1), Contains("mem_len must be >= 0")); }
    SECTION("tokens not a multiple of the batch") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3};
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("not a multiple of the batch size 2"));
    }
    SECTION("targets of another length") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3, 4}, y{1, 2};
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Contains("targets hold 2 tokens"));
    }
    SECTION("memory of another model") {
        memtx::TransformerXL<tiny> a;
        memtx::Memory<float> mem(3, 2, 4, 8);
        std::vector<std::int32_t> x{1, 2, 3, 4};
        CHECK_THROWS_WITH(a.forward_backward(x, x, mem, opt), Contains("memory was made for another model shape"));
    }
    SECTION("same_length without memory") {
        auto mem = model.make_memory(2, 0);
        std::vector<std::int32_t> x{1, 2, 3, 4};
        opt.same_length = true;
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("same_length needs mem_len > 0"));
    }
    SECTION("negative clamp_len") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3, 4};
        opt.clamp_len = -2;
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("clamp_len must be >= 0"));
    }
    SECTION("a head map naming a head that does not exist") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3, 4};
        const int bad[2] = {0, 2};
        const int* maps[2] = {nullptr, bad};
        opt.head_maps = maps;
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("head map of layer 1: head 1 reads head 2"));
    }
    SECTION("a skip mask or head maps for another number of layers") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3, 4};
        const std::uint8_t skip[3] = {0, 1, 0};
        opt.skip = skip;
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("skip mask holds 3 layers, the model 2"));
        opt.skip = {};
        const int* maps[1] = {nullptr};
        opt.head_maps = maps;
        CHECK_THROWS_WITH(model.forward_backward(x, x, mem, opt), Contains("head maps hold 1 layers, the model 2"));
    }
    SECTION("a bad target leaves the memory as it was") {
        auto mem = model.make_memory(2, 4);
        std::vector<std::int32_t> x{1, 2, 3, 4}, y{1, 2, 3, 99};
        CHECK_THROWS_WITH(model.forward_backward(x, y, mem, opt), Contains("target token id 99"));
        CHECK(mem.rows(0) == 0);
    }
}

TEST_CASE("nonsense options are rejected", "[bad_input]") {
    CHECK_THROWS_WITH((memtx::TransformerXL<tiny>({.dropout = 1.0f})), Contains("dropout must be in [0, 1)"));
    CHECK_THROWS_WITH((memtx::TransformerXL<tiny>({.dropatt = -0.1f})), Contains("dropatt must be in [0, 1)"));
    memtx::TransformerXL<tiny> model;
    CHECK_THROWS_WITH(memtx::Adam<float>(model, {.lr = -1}), Contains("learning rate"));
    CHECK_THROWS_WITH(memtx::Adam<float>(model, {.beta2 = 1.0}), Contains("beta2"));
    CHECK_THROWS_WITH(memtx::set_num_threads(0), Contains("thread count must be positive"));
}

TEST_CASE("weight files that do not fit the model are rejected", "[bad_input][io]") {
    const auto dir = temp_dir();
    memtx::TransformerXL<tiny> model({.seed = 5});
    const auto good = dir / "good.safetensors";
    memtx::save_weights(model, good);

    SECTION("round trip restores every weight") {
        memtx::TransformerXL<tiny> other_model({.seed = 6});
        memtx::load_weights(other_model, good);
        CHECK(std::equal(model.parameters().begin(), model.parameters().end(), other_model.parameters().begin()));
    }
    SECTION("a tensor of the wrong shape (another vocabulary)") {
        memtx::TransformerXL<other> m;
        const auto before = std::vector<float>(m.parameters().begin(), m.parameters().end());
        CHECK_THROWS_WITH(memtx::load_weights(m, good), Contains("word_emb.emb_layers.0.weight") && Contains("shape"));
        CHECK(std::equal(before.begin(), before.end(), m.parameters().begin()));   // unchanged on error
    }
    SECTION("a missing tensor (untied model reading a tied file)") {
        memtx::TransformerXL<tiny_untied> m;
        // the tied file holds crit.out_layers.0.weight too, so remove a layer tensor instead
        memtx::io::SafetensorsReader r(good);
        memtx::io::SafetensorsWriter w;
        for (const auto& name : r.names())
            if (name != "layers.1.pos_ff.CoreNet.3.bias") {
                const auto v = r.read<float>(name);
                w.add<float>(name, v, r.info(name).shape, memtx::io::DType::F32);
            }
        const auto missing = dir / "missing.safetensors";
        w.write(missing);
        CHECK_THROWS_WITH(memtx::load_weights(m, missing), Contains("'layers.1.pos_ff.CoreNet.3.bias' is missing"));
    }
    SECTION("a tied model reading untied output weights that differ") {
        memtx::TransformerXL<tiny_untied> untied({.seed = 9});
        const auto f = dir / "untied.safetensors";
        memtx::save_weights(untied, f);
        CHECK_THROWS_WITH(memtx::load_weights(model, f), Contains("differs from word_emb"));
    }
    SECTION("a truncated file") {
        const auto bytes = std::filesystem::file_size(good);
        const auto cut = dir / "cut.safetensors";
        std::filesystem::copy_file(good, cut, std::filesystem::copy_options::overwrite_existing);
        std::filesystem::resize_file(cut, bytes - 10);
        CHECK_THROWS_AS(memtx::load_weights(model, cut), memtx::Error);
    }
    SECTION("a missing file") {
        CHECK_THROWS_WITH(memtx::load_weights(model, dir / "nope.safetensors"), Contains("nope.safetensors"));
    }
    std::filesystem::remove_all(dir);
}
