// Open-addressing hash tables for the tokenizer's two hot lookups: token text -> id, and a pair of piece ids ->
// merge. Node-based std::unordered_map spent most of tokenizing time in cache misses walking bucket chains; these
// keep one flat array probed linearly (load factor at most 1/2).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace quant::text {

// A fast, well-mixed 64-bit hash of a short byte string (tokens are a few bytes).
inline uint64_t hash_bytes(std::string_view s) {
  constexpr uint64_t kMultiplier = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t(s.size()) * kMultiplier);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t chunk;
    std::memcpy(&chunk, s.data() + i, 8);
    h = (h ^ chunk) * kMultiplier;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * kMultiplier;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

inline size_t table_capacity(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  return capacity;
}

// Maps strings (views into storage the caller keeps alive) to int32 values.
class StringIndex {
 public:
  void reserve(size_t count) {
    slots_.assign(table_capacity(count), Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }

  // Inserts key -> value unless the key is present; returns the value stored for the key.
  int32_t insert(std::string_view key, int32_t value) {
    if (key.data() == nullptr) key = std::string_view("", 0);  // a null pointer marks an empty slot
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t hash = hash_bytes(key);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.data == nullptr) {
        slot = Slot{key.data(), uint32_t(key.size()), value, hash};
        ++size_;
        return value;
      }
      if (slot.hash == hash && slot.size == key.size() && std::memcmp(slot.data, key.data(), key.size()) == 0) {
        return slot.value;
      }
    }
  }

  // The value for `key`, or `missing`.
  int32_t find(std::string_view key, int32_t missing = -1) const {
    if (size_ == 0) return missing;
    const uint64_t hash = hash_bytes(key);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.data == nullptr) return missing;
      if (slot.hash == hash && slot.size == key.size() && std::memcmp(slot.data, key.data(), key.size()) == 0) {
        return slot.value;
      }
    }
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    const char* data = nullptr;  // null: empty (keys are never null: an empty key points at a static "")
    uint32_t size = 0;
    int32_t value = 0;
    uint64_t hash = 0;
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& slot : old) {
      if (slot.data != nullptr) insert(std::string_view(slot.data, slot.size), slot.value);
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Maps a pair of non-negative int32 ids to a pair of int32 values.
class PairIndex {
 public:
  struct Entry {
    int32_t first = 0;
    int32_t second = 0;
  };

  void reserve(size_t count) {
    slots_.assign(table_capacity(count), Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }

  // Inserts unless the pair is present (the first insertion wins).
  void insert(int32_t a, int32_t b, Entry entry) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t key = pack(a, b);
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == kEmpty) {
        slot = Slot{key, entry};
        ++size_;
        return;
      }
      if (slot.key == key) return;
    }
  }

  const Entry* find(int32_t a, int32_t b) const {
    if (size_ == 0) return nullptr;
    const uint64_t key = pack(a, b);
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.entry;
      if (slot.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key = kEmpty;
    Entry entry;
  };
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static uint64_t mix(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& slot : old) {
      if (slot.key != kEmpty) insert(int32_t(slot.key >> 32), int32_t(uint32_t(slot.key)), slot.entry);
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace quant::text
