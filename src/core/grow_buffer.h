// A buffer that grows and is never zero-filled, for working arrays whose users write every element before reading
// it. A std::vector zero-fills (and page-faults) megabytes on the thread that resizes it: in the forward pass that
// was a serial phase while the other threads waited; here the first touch happens in the parallel tasks that write.
#pragma once

#include <cstddef>
#include <memory>

namespace quant {

template <typename T>
class GrowBuffer {
 public:
  // At least `size` elements; the contents are unspecified after growing.
  T* at_least(size_t size) {
    if (size_ < size) {
      data_.reset();  // free the old block first: the peak is the larger block alone
      data_ = std::make_unique_for_overwrite<T[]>(size);
      size_ = size;
    }
    return data_.get();
  }
  T* data() { return data_.get(); }

 private:
  std::unique_ptr<T[]> data_;
  size_t size_ = 0;
};

}  // namespace quant
