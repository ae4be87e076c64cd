#pragma once
#include "pool/pool.hpp"  // core includes a layer above it
