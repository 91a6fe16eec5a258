#pragma once
/// @file dlopt.hpp
/// Umbrella header: everything an embedding application needs.

#include "dlopt/core/step.hpp"
#include "dlopt/optim/any_optimizer.hpp"
#include "dlopt/optim/optimizer.hpp"
#include "dlopt/optim/registry.hpp"
#include "dlopt/version.hpp"
