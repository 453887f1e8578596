// Class probabilities of CSV rows through an edgeclf ExecuTorch program (model.pte or model.portable.pte).
//
//   make -C examples/cpp                      # builds ./predict against the installed executorch wheel
//   examples/cpp/predict artifacts/circles/model.pte rows.csv
//   printf 'x1,x2\n0.0,0.1\n' | examples/cpp/predict artifacts/circles/model.portable.pte
//
// Reads rows of F floats (F = the program's input width) from the file or stdin; a first line that starts with a
// name is a header and is skipped. The program's batch size B is fixed: rows go in chunks of B, the last one
// zero-padded (rows are independent), and only the real rows are printed, one line of comma-separated
// probabilities each (classes in the manifest's order). A multi-label program (its folder's manifest.json carries
// "thresholds", one per label) prints L probabilities then L 0/1 decisions (p >= the label's threshold, as the
// runtime decides) per row. Any error: one line on stderr, exit 1.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>

using executorch::extension::Module;

namespace {

constexpr size_t kProbabilities = 1;  // the method's outputs: 0 = logits, 1 = probabilities (manifest details)

// The runtime logs to stderr at info level (its threadpool probes the CPU on every first run): drop those, and keep
// the last error-level message to name the cause in the program's one error line.
std::string last_runtime_error;

void keep_errors(et_timestamp_t, et_pal_log_level_t level, const char*, const char*, size_t, const char* message,
                 size_t length) {
  if (level == kError || level == kFatal) last_runtime_error.assign(message, length);
}

std::string failure(const std::string& what, executorch::runtime::Error error) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%x", static_cast<unsigned>(error));
  std::string why = last_runtime_error.empty() ? "" : ": " + last_runtime_error;
  return what + " (executorch error " + code + why + ")";
}

struct Shape {
  int batch;
  int features;
};

Shape input_shape(Module& module, const std::string& path) {
  auto meta = module.method_meta("forward");
  if (!meta.ok()) {
    throw std::runtime_error(failure(path + ": not a loadable ExecuTorch program", meta.error()) + "; re-export it");
  }
  auto input = meta->input_tensor_meta(0);
  if (!input.ok() || input->sizes().size() != 2) {
    throw std::runtime_error(path + ": expected one (B, F) float input");
  }
  return {static_cast<int>(input->sizes()[0]), static_cast<int>(input->sizes()[1])};
}

bool is_header(const std::string& line) {
  const char* s = line.c_str();
  char* end = nullptr;
  std::strtof(s, &end);
  return end == s;
}

std::vector<float> parse_row(const std::string& line, int features, int number) {
  std::vector<float> row;
  const char* p = line.c_str();
  for (int k = 0; k < features; ++k) {
    char* end = nullptr;
    errno = 0;
    float v = std::strtof(p, &end);
    if (end == p || errno == ERANGE || !std::isfinite(v)) break;
    row.push_back(v);
    p = end;
    while (*p == ' ' || *p == '\t') ++p;
    if (k + 1 < features && *p++ != ',') break;
  }
  while (*p == ' ' || *p == '\t' || *p == '\r') ++p;
  if (static_cast<int>(row.size()) != features || *p != '\0') {
    throw std::runtime_error("line " + std::to_string(number) + ": expected " + std::to_string(features) +
                             " comma-separated finite numbers, got '" + line.substr(0, 80) + "'");
  }
  return row;
}

std::vector<float> read_rows(std::istream& in, int features) {
  std::vector<float> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (number == 1 && is_header(line)) continue;
    auto row = parse_row(line, features, number);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  return rows;
}

// A multi-label artifact's per-label thresholds, from the manifest.json beside the program: the .pte holds the
// network only. Empty for a single-label one (its manifest has no "thresholds") or a program without a manifest.
// The manifest is edgeclf's own JSON ("thresholds": [numbers]), so this reads that one array, not JSON at large.
std::vector<float> thresholds_beside(const std::string& program) {
  const size_t slash = program.find_last_of('/');
  const std::string manifest = (slash == std::string::npos ? "" : program.substr(0, slash + 1)) + "manifest.json";
  std::ifstream in(manifest);
  if (!in) return {};
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t key = text.find("\"thresholds\": [");
  if (key == std::string::npos) return {};
  std::vector<float> out;
  const char* p = text.c_str() + key + std::strlen("\"thresholds\": [");
  for (;;) {
    char* end = nullptr;
    const float v = std::strtof(p, &end);
    if (end == p) throw std::runtime_error(manifest + ": \"thresholds\" is not a list of numbers; re-export it");
    out.push_back(v);
    p = end;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') ++p;
    if (*p == ']') return out;
    if (*p++ != ',') throw std::runtime_error(manifest + ": \"thresholds\" is not a list of numbers; re-export it");
  }
}

// One row's output line: the probabilities, then for a multi-label program each label's 0/1 decision.
void print_row(const float* p, int classes, const std::vector<float>& thresholds) {
  for (int c = 0; c < classes; ++c) std::printf("%.9g%s", p[c], c + 1 < classes || !thresholds.empty() ? "," : "\n");
  for (size_t c = 0; c < thresholds.size(); ++c) {
    std::printf("%d%s", p[c] >= thresholds[c] ? 1 : 0, c + 1 < thresholds.size() ? "," : "\n");
  }
}

void predict(Module& module, const Shape& shape, const std::vector<float>& rows, const std::vector<float>& thresholds) {
  const size_t n = rows.size() / shape.features;
  std::vector<float> chunk(static_cast<size_t>(shape.batch) * shape.features);
  for (size_t start = 0; start < n; start += shape.batch) {
    const size_t k = std::min(n - start, static_cast<size_t>(shape.batch));
    std::fill(chunk.begin(), chunk.end(), 0.0f);  // the padding rows
    std::copy(rows.begin() + start * shape.features, rows.begin() + (start + k) * shape.features, chunk.begin());
    auto x = executorch::extension::from_blob(chunk.data(), {shape.batch, shape.features});
    auto out = module.forward(x);
    if (!out.ok()) throw std::runtime_error(failure("forward failed", out.error()));
    const auto& p = out->at(kProbabilities).toTensor();  // (B, C)
    const int classes = static_cast<int>(p.size(1));
    if (!thresholds.empty() && static_cast<int>(thresholds.size()) != classes) {
      throw std::runtime_error(std::to_string(thresholds.size()) + " thresholds in the manifest for " +
                               std::to_string(classes) + " program outputs: the manifest is not this program's");
    }
    const float* data = p.const_data_ptr<float>();
    for (size_t i = 0; i < k; ++i) print_row(data + i * classes, classes, thresholds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s MODEL.pte [ROWS.csv]  (rows from stdin without ROWS.csv)\n", argv[0]);
    return 1;
  }
  executorch::runtime::register_pal(executorch::runtime::PalImpl::create(keep_errors, __FILE__));
  try {
    const std::string path = argv[1];
    if (!std::ifstream(path).good()) throw std::runtime_error(path + ": cannot open the program file");
    Module module(path, Module::LoadMode::File);
    const Shape shape = input_shape(module, path);
    const std::vector<float> thresholds = thresholds_beside(path);
    std::vector<float> rows;
    if (argc == 3) {
      std::ifstream file(argv[2]);
      if (!file) throw std::runtime_error(std::string(argv[2]) + ": cannot open the rows file");
      rows = read_rows(file, shape.features);
    } else {
      rows = read_rows(std::cin, shape.features);
    }
    predict(module, shape, rows, thresholds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
