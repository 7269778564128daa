// model.safetensors.index.json, and the check of the shards' headers against it.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/json_error_text.h"
#include "quant/safetensors.h"

namespace quant {
namespace {

using Json = nlohmann::ordered_json;

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

Result<SafetensorsIndex> parse_safetensors_index(std::string_view json, const std::string& path,
                                                 const SafetensorsLimits& limits) {
  if (json.size() > limits.max_header_bytes) {
    return invalid_input(fmt::format("index of {} bytes exceeds the cap of {} bytes", json.size(),
                                     limits.max_header_bytes))
        .in_file(path);
  }
  std::string duplicate_key;
  std::set<std::string> keys;
  // Duplicated tensor names inside "weight_map" (depth 2) would be silently merged by the parser.
  std::string parent;
  auto watch_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string()) parent = parsed.get<std::string>();
    if (depth == 2 && parent == "weight_map" && event == Json::parse_event_t::key && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && duplicate_key.empty()) {
        duplicate_key = parsed.get<std::string>();
      }
    }
    return true;
  };
  Json root;
  try {
    root = Json::parse(json.begin(), json.end(), watch_keys);
  } catch (const Json::exception& e) {
    return invalid_input(fmt::format("not valid JSON: {}", json_error_text(e))).in_file(path);
  }
  if (!root.is_object()) return invalid_input("the index is not a JSON object").in_file(path);
  const auto map_it = root.find("weight_map");
  if (map_it == root.end() || !map_it->is_object()) {
    return invalid_input("the index has no \"weight_map\" object").in_file(path);
  }
  SafetensorsIndex index;
  if (const auto meta = root.find("metadata"); meta != root.end() && meta->is_object()) {
    if (const auto total = meta->find("total_size"); total != meta->end() && total->is_number_unsigned()) {
      index.total_size = total->get<uint64_t>();
    }
  }
  std::set<std::string> shard_set;
  for (const auto& [tensor, shard] : map_it->items()) {
    if (!shard.is_string()) {
      return Error(invalid_input("weight_map entry is not a file name")).in_file(path).in_tensor(tensor);
    }
    const std::string file = shard.get<std::string>();
    if (!is_plain_file_name(file)) {
      return Error(invalid_input(fmt::format("weight_map names shard '{}', which is not a file name in the "
                                             "checkpoint folder",
                                             file)))
          .in_file(path)
          .in_tensor(tensor);
    }
    index.weight_map.emplace_back(tensor, file);
    shard_set.insert(file);
  }
  if (!duplicate_key.empty()) {
    return Error(invalid_input("the index lists this name twice")).in_file(path).in_tensor(duplicate_key);
  }
  if (index.weight_map.empty()) return invalid_input("the index's weight_map is empty").in_file(path);
  index.shards.assign(shard_set.begin(), shard_set.end());
  return index;
}

Status check_shards(const SafetensorsIndex& index, const std::string& index_path,
                    std::span<const std::string> shard_paths, std::span<const SafetensorsHeader* const> shard_headers) {
  if (shard_paths.size() != index.shards.size() || shard_headers.size() != index.shards.size()) {
    return invalid_input("internal: shard list does not match the index").in_file(index_path);
  }
  std::map<std::string_view, size_t> shard_of;  // tensor -> shard number, from the headers
  for (size_t s = 0; s < shard_headers.size(); ++s) {
    for (const SafetensorsTensor& tensor : shard_headers[s]->tensors) {
      const auto [it, inserted] = shard_of.emplace(tensor.name, s);
      if (!inserted) {
        return Error(invalid_input(fmt::format("tensor is stored in two shards: {} and {}", shard_paths[it->second],
                                               shard_paths[s])))
            .in_file(shard_paths[s])
            .in_tensor(tensor.name);
      }
    }
  }
  std::map<std::string_view, std::string_view> listed;
  for (const auto& [tensor, shard] : index.weight_map) listed.emplace(tensor, shard);
  for (const auto& [tensor, shard] : index.weight_map) {
    const auto found = shard_of.find(tensor);
    if (found == shard_of.end()) {
      return Error(invalid_input(fmt::format("the index places this tensor in {}, which does not hold it", shard)))
          .in_file(index_path)
          .in_tensor(tensor);
    }
    if (index.shards[found->second] != shard) {
      return Error(invalid_input(fmt::format("the index places this tensor in {}, but it is stored in {}", shard,
                                             index.shards[found->second])))
          .in_file(index_path)
          .in_tensor(tensor);
    }
  }
  for (const auto& [tensor, shard] : shard_of) {
    if (!listed.contains(tensor)) {
      return Error(invalid_input("tensor is stored in the shard but not listed in the index (model.safetensors."
                                 "index.json)"))
          .in_file(shard_paths[shard])
          .in_tensor(std::string(tensor));
    }
  }
  return Status::success();
}

}  // namespace quant
