// Everything Eigen includes, included before a SIMD file opens its target region: a standard-library inline
// function first seen inside the region would be compiled for that target, and the linker could keep that copy for
// the plain path.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cfloat>
#include <climits>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <iostream>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
