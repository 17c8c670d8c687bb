// `hydra tokenize`: encode text files with a HuggingFace byte-level BPE tokenizer.json into one raw
// token file plus a JSON sidecar.
//
//   hydra tokenize --tokenizer tokenizer.json a.txt b.txt --out tokens.bin [--append-eos] [--allow-special]
//
// tokens.bin: the ids of every input in order, no header, little-endian uint16 when the vocabulary
// has at most 65536 ids, else uint32. tokens.bin.json:
//   {"format_version": 1, "dtype": "uint16", "count": N, "vocab_size": V, "eos_id": E (only with
//    --append-eos), "allow_special": false, "tokenizer": path, "tokenizer_sha256": hex,
//    "sources": [{"path", "sha256", "bytes", "tokens"}]}   (a source's tokens include its EOS)
// --append-eos puts the EOS id (--eos-token, default "<|endoftext|>") after each input's tokens.
// Special-token text in the inputs is plain text unless --allow-special.
// Every input is read and encoded before anything is written; both files are written in full and then
// renamed into place back to back (io/atomic_file.h's commit_together), so an error or an interruption
// (exit 2 naming the file, or the signal's own status) leaves the existing pair untouched and no
// temporary file behind. An output that is one of the inputs is refused.
// Not yet: streaming (inputs and ids are held in memory), several threads.
#include <bit>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/sha256.h"
#include "io/tokenizer.h"
#include "tensor/error.h"
#include "tensor/machine_memory.h"

static_assert(std::endian::native == std::endian::little, "token files are written as host memory");

namespace hydra::cli {

namespace {

struct Source {
  std::string path, sha256;
  uint64_t bytes = 0, tokens = 0;
};

}  // namespace

Command add_tokenize_command(CLI::App& hydra) {
  struct Options {
    std::string tokenizer, out, eos_token = "<|endoftext|>";
    std::vector<std::string> inputs;
    bool append_eos = false, allow_special = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("tokenize", "Encode text files into a raw token file (+ .json sidecar)");
  app->add_option("--tokenizer", opt->tokenizer, "HuggingFace tokenizer.json (byte-level BPE)")->required();
  app->add_option("inputs", opt->inputs, "UTF-8 text files, encoded in order")->required();
  app->add_option("--out", opt->out, "Output token file; the sidecar is <out>.json")->required();
  app->add_flag("--append-eos", opt->append_eos, "Append the EOS id after each input's tokens");
  app->add_option("--eos-token", opt->eos_token, "The EOS token's text (default <|endoftext|>)");
  app->add_flag("--allow-special", opt->allow_special, "Encode special-token text in the inputs as special tokens");
  return {app, [opt] {
            std::vector<io::NamedPath> inputs = {{"--tokenizer", opt->tokenizer}};
            for (const std::string& path : opt->inputs) inputs.push_back({"a text to tokenize", path});
            io::check_distinct_outputs({{"--out", opt->out}, {"the sidecar", opt->out + ".json"}}, inputs);
            const std::string tokenizer_json = io::read_file(opt->tokenizer, "tokenizer file", io::kMaxTokenizerBytes);
            const io::Tokenizer tokenizer = io::Tokenizer::from_json(tokenizer_json, opt->tokenizer);
            std::optional<uint32_t> eos;
            if (opt->append_eos) {
              eos = tokenizer.token_id(opt->eos_token);
              HYDRA_CHECK(eos.has_value(), "--append-eos: the tokenizer ", opt->tokenizer, " has no token '",
                          opt->eos_token, "' (choose one with --eos-token)");
            }
            std::vector<uint32_t> ids;
            std::vector<Source> sources;
            for (const std::string& path : opt->inputs) {
              // Held in memory with its ids (4 bytes each; real text has 3-5 bytes per token, at worst
              // 1): a file that cannot fit twice over is refused before it is read.
              const io::InputFile in = io::InputFile::open(path, "input file");
              check_fits_in_memory(2 * in.size(), "tokenizing " + path);
              const std::string text = in.read_all(in.size());
              const size_t before = ids.size();
              tokenizer.encode(text, ids, opt->allow_special, path);
              if (eos) ids.push_back(*eos);
              sources.push_back({path, io::sha256_hex(text), text.size(), ids.size() - before});
            }

            const bool narrow = tokenizer.vocab_size() <= 65536;
            nlohmann::json sidecar = {
                {"format_version", 1},
                {"dtype", narrow ? "uint16" : "uint32"},
                {"count", ids.size()},
                {"vocab_size", tokenizer.vocab_size()},
            };
            if (eos) sidecar["eos_id"] = *eos;
            sidecar["allow_special"] = opt->allow_special;
            sidecar["tokenizer"] = opt->tokenizer;
            sidecar["tokenizer_sha256"] = io::sha256_hex(tokenizer_json);
            sidecar["sources"] = nlohmann::json::array();
            for (const Source& s : sources)
              sidecar["sources"].push_back({{"path", s.path}, {"sha256", s.sha256}, {"bytes", s.bytes}, {"tokens", s.tokens}});

            io::AtomicFile out(opt->out), side(opt->out + ".json");
            if (narrow) {
              const std::vector<uint16_t> narrow_ids(ids.begin(), ids.end());
              out.write(narrow_ids.data(), narrow_ids.size() * sizeof(uint16_t));
            } else {
              out.write(ids.data(), ids.size() * sizeof(uint32_t));
            }
            side.write(sidecar.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
            io::commit_together({&out, &side});
            std::cout << "wrote " << ids.size() << " tokens (" << (narrow ? "uint16" : "uint32") << ") from "
                      << sources.size() << " file" << (sources.size() == 1 ? "" : "s") << " to " << opt->out << "\n";
            return 0;
          }};
}

}  // namespace hydra::cli
