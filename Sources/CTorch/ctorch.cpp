// libtorch shim: every entry point catches all C++ exceptions and reports them
// through ctorch_error, so nothing unwinds into Swift or aborts the process.
#include "ctorch.h"

#include <torch/script.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/autograd/autograd.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <regex>
#include <string>
#include <vector>

struct ctorch_model {
    // Frozen (weights inlined as constants) with `features` and `head` kept. Models are saved frozen
    // by models/frozen.py, whose `forward` calls `features` and `head`, so each weight is loaded once;
    // fp32 `features` is then repacked for oneDNN (optimize_for_inference), int8 `features` already
    // holds packed quantised weights. `head` is never optimised: autograd still flows through it to
    // the activations, which is all Grad-CAM needs.
    torch::jit::Module frozen;
};

namespace {

void set_error(ctorch_error *err, const char *what) {
    if (err == nullptr) return;
    std::string message(what);
    // A TorchScript traceback can be kilobytes long; its last line names the actual error.
    if (message.find("Traceback of TorchScript") != std::string::npos) {
        size_t end = message.find_last_not_of(" \n");
        size_t start = message.rfind('\n', end);
        if (end != std::string::npos)
            message = message.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
    }
    std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
}

// Runs body, turning any exception into an error message and a non-zero status.
template <typename Body>
int32_t guarded(ctorch_error *err, Body &&body) {
    try {
        body();
        return 0;
    } catch (const c10::Error &e) {
        set_error(err, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        set_error(err, "out of memory in libtorch");
    } catch (const std::exception &e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception in libtorch");
    }
    return 1;
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

float *copy_out(const at::Tensor &t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    const size_t n = static_cast<size_t>(c.numel());
    float *buffer = static_cast<float *>(std::malloc(std::max<size_t>(n, 1) * sizeof(float)));
    if (buffer == nullptr) throw std::bad_alloc();
    std::memcpy(buffer, c.data_ptr<float>(), n * sizeof(float));
    return buffer;
}

at::Tensor input_tensor(const float *input, const int64_t *shape, int32_t rank) {
    if (input == nullptr || shape == nullptr || rank <= 0 || rank > 8)
        throw std::invalid_argument("input tensor needs data and a shape of rank 1...8");
    std::vector<int64_t> sizes(shape, shape + rank);
    for (int64_t s : sizes)
        if (s <= 0) throw std::invalid_argument("input tensor has a non-positive dimension");
    // from_blob does not copy; the caller's buffer outlives the call and is never written.
    return torch::from_blob(const_cast<float *>(input), sizes, torch::kFloat);
}

at::Tensor dense(const c10::IValue &value, const char *what) {
    if (!value.isTensor()) throw std::runtime_error(std::string(what) + " did not return a tensor");
    at::Tensor t = value.toTensor();
    return t.is_mkldnn() ? t.to_dense() : t;
}

at::Tensor logsumexp_of(const at::Tensor &logits, const int32_t *indices, int32_t count, int64_t classes) {
    std::vector<int64_t> idx;
    idx.reserve(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) {
        if (indices[i] < 0 || indices[i] >= classes)
            throw std::out_of_range("Grad-CAM target names class " + std::to_string(indices[i]) +
                                    " but the model has " + std::to_string(classes) + " outputs");
        idx.push_back(indices[i]);
    }
    at::Tensor picked = logits.index_select(0, torch::tensor(idx, torch::kLong));
    return count == 1 ? picked[0] : torch::logsumexp(picked, 0);
}

// The quantised engine a model file was made for, from its mediscope.json ("" when it is float).
std::string recorded_engine(const char *path) {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("extra/mediscope.json")) return "";
    auto record = reader.getRecord("extra/mediscope.json");
    std::string json(static_cast<const char *>(std::get<0>(record).get()), std::get<1>(record));
    static const std::regex engine(R"re("quantized"\s*:\s*\{[^}]*"engine"\s*:\s*"([A-Za-z0-9_]+)")re");
    std::smatch match;
    return std::regex_search(json, match, engine) ? match[1].str() : "";
}

at::QEngine engine_named(const std::string &name) {
    static const std::vector<std::pair<std::string, at::QEngine>> engines = {
        {"onednn", at::QEngine::ONEDNN}, {"qnnpack", at::QEngine::QNNPACK}, {"fbgemm", at::QEngine::FBGEMM}};
    std::string supported;
    for (at::QEngine e : at::globalContext().supportedQEngines())
        for (const auto &[n, known] : engines)
            if (known == e) supported += (supported.empty() ? "" : ", ") + n;
    for (const auto &[n, e] : engines) {
        if (n != name) continue;
        const auto &have = at::globalContext().supportedQEngines();
        if (std::find(have.begin(), have.end(), e) != have.end()) return e;
    }
    throw std::runtime_error("this libtorch has no `" + name + "` quantised engine (it has: " + supported + ")");
}

// The entry points: internal, reached only through ctorch_api_get.

int32_t ctorch_set_num_threads(int32_t threads) {
    if (threads > 0) at::set_num_threads(threads);
    return at::get_num_threads();
}

int32_t ctorch_get_num_threads(void) { return at::get_num_threads(); }

ctorch_model *ctorch_model_load(const char *path, const char *quantized_engine, ctorch_error *err) {
    std::unique_ptr<ctorch_model> model;
    int32_t status = guarded(err, [&] {
        if (path == nullptr) throw std::invalid_argument("no model path given");
        const std::string wanted = quantized_engine == nullptr ? "" : quantized_engine;
        const std::string recorded = recorded_engine(path);
        if (wanted != recorded) {
            if (wanted.empty())
                throw std::runtime_error("the model is quantised (int8) for the `" + recorded +
                                         "` engine but its manifest entry names no engine (add \"engine\": \"" + recorded + "\")");
            if (recorded.empty())
                throw std::runtime_error("the manifest names the quantised engine `" + wanted +
                                         "` but the model file is not quantised");
            throw std::runtime_error("the model was quantised for the `" + recorded + "` engine but the manifest names `" +
                                     wanted + "`; its packed weights only run on the engine they were made for");
        }
        // Quantised weights are packed for the engine in force while the file loads: select it first.
        if (!wanted.empty()) at::globalContext().setQEngine(engine_named(wanted));

        torch::jit::Module frozen = torch::jit::load(path, torch::kCPU);
        for (const char *method : {"forward", "features", "head"})
            if (!frozen.find_method(method))
                throw std::runtime_error(std::string("model has no `") + method +
                                         "` method (see the model contract in models/README.md)");
        if (frozen.type()->hasAttribute("training")) {
            // A file saved unfrozen (older conversions, hand-made models): freeze it here. This holds
            // the scripted module and its frozen clone at once, which saving frozen avoids.
            frozen.eval();
            for (at::Tensor p : frozen.parameters()) p.set_requires_grad(false);
            frozen = torch::jit::freeze(frozen, std::vector<std::string>{"features", "head"});
        }
        // Without oneDNN repacking, libtorch's single-thread fp32 convolution is many times slower.
        if (wanted.empty()) frozen = torch::jit::optimize_for_inference(frozen, {"features"});
        model.reset(new ctorch_model{frozen});
    });
    return status == 0 ? model.release() : nullptr;
}

void ctorch_model_free(ctorch_model *model) { delete model; }

void ctorch_result_free(ctorch_result *result);

int32_t ctorch_model_run(ctorch_model *model,
                         const float *input, const int64_t *shape, int32_t rank,
                         const ctorch_cam_target *targets, int32_t target_count,
                         ctorch_result *out, ctorch_error *err) {
    if (out == nullptr) {
        set_error(err, "no result struct given");
        return 1;
    }
    std::memset(out, 0, sizeof *out);
    int32_t status = guarded(err, [&] {
        if (model == nullptr) throw std::invalid_argument("no model given");
        if (target_count < 0 || (target_count > 0 && targets == nullptr))
            throw std::invalid_argument("bad Grad-CAM target list");
        at::Tensor x = input_tensor(input, shape, rank);

        auto t0 = std::chrono::steady_clock::now();
        at::Tensor activations;
        {
            torch::NoGradGuard no_grad;
            activations = dense(model->frozen.get_method("features")({x}), "features").contiguous();
        }
        out->features_ms = ms_since(t0);
        if (activations.dim() != 4 || activations.size(0) != 1)
            throw std::runtime_error("features must return [1, C, H, W] activations, got " +
                                     std::to_string(activations.dim()) + " dimensions");

        auto t1 = std::chrono::steady_clock::now();
        const bool want_cam = target_count > 0;
        activations.set_requires_grad(want_cam);
        at::Tensor logits;
        {
            torch::AutoGradMode grad_mode(want_cam);
            logits = dense(model->frozen.get_method("head")({activations}), "head");
        }
        logits = logits.reshape({-1});
        out->head_ms = ms_since(t1);
        const int64_t classes = logits.numel();

        auto t2 = std::chrono::steady_clock::now();
        std::vector<at::Tensor> cams;
        cams.reserve(static_cast<size_t>(target_count));
        for (int32_t i = 0; i < target_count; ++i) {
            const ctorch_cam_target &target = targets[i];
            at::Tensor score;
            if (target.explain_top_class) {
                score = logits[logits.detach().argmax().item<int64_t>()];
            } else {
                if (target.positive_count <= 0 || target.positive == nullptr)
                    throw std::invalid_argument("Grad-CAM target needs at least one positive class");
                score = logsumexp_of(logits, target.positive, target.positive_count, classes);
            }
            if (!target.explain_top_class && target.negative_count > 0)
                score = score - logsumexp_of(logits, target.negative, target.negative_count, classes);
            const bool last = i == target_count - 1;
            at::Tensor grad = torch::autograd::grad({score}, {activations}, {}, /*retain_graph=*/!last)[0];
            torch::NoGradGuard no_grad;
            at::Tensor weights = grad.mean({2, 3}, /*keepdim=*/true);          // [1, C, 1, 1]
            cams.push_back(torch::relu((weights * activations.detach()).sum(1))[0]);  // [H, W]
        }
        out->gradcam_ms = ms_since(t2);

        out->logits = copy_out(logits.detach());
        out->logit_count = classes;
        {
            torch::NoGradGuard no_grad;
            out->pooled = copy_out(activations.detach().mean({2, 3}).reshape({-1}));
            out->pooled_count = activations.size(1);
        }
        if (!cams.empty()) {
            out->cams = copy_out(torch::stack(cams));
            out->cam_count = target_count;
            out->cam_height = activations.size(2);
            out->cam_width = activations.size(3);
        }
    });
    if (status != 0) ctorch_result_free(out);
    return status;
}

void ctorch_result_free(ctorch_result *result) {
    if (result == nullptr) return;
    std::free(result->logits);
    std::free(result->cams);
    std::free(result->pooled);
    std::memset(result, 0, sizeof *result);
}

int32_t ctorch_model_bench_forward(ctorch_model *model,
                                   const float *input, const int64_t *shape, int32_t rank,
                                   int32_t iterations, double *median_ms, ctorch_error *err) {
    return guarded(err, [&] {
        if (model == nullptr || median_ms == nullptr || iterations <= 0)
            throw std::invalid_argument("bench needs a model, a result pointer and iterations > 0");
        at::Tensor x = input_tensor(input, shape, rank);
        torch::InferenceMode inference;
        std::vector<double> times;
        for (int32_t i = 0; i < iterations; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            at::Tensor y = dense(model->frozen.forward({x}), "forward");
            times.push_back(ms_since(t0));
        }
        std::sort(times.begin(), times.end());
        *median_ms = times[times.size() / 2];
    });
}

}  // namespace

extern "C" const ctorch_api *ctorch_api_get(void) {
    static const ctorch_api api = {
        CTORCH_API_VERSION,
        ctorch_set_num_threads,
        ctorch_get_num_threads,
        ctorch_model_load,
        ctorch_model_free,
        ctorch_model_run,
        ctorch_result_free,
        ctorch_model_bench_forward,
    };
    return &api;
}
