#pragma once
/// @file dlopt.hpp
/// Umbrella header: everything an embedding application needs.

#include "dlopt/average.hpp"
#include "dlopt/checkpoint.hpp"
#include "dlopt/clip.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/metrics.hpp"
#include "dlopt/models/linear.hpp"
#include "dlopt/optim/any_optimizer.hpp"
#include "dlopt/optim/lbfgs.hpp"
#include "dlopt/optim/optimizer.hpp"
#include "dlopt/optim/registry.hpp"
#include "dlopt/resume.hpp"
#include "dlopt/schedule.hpp"
#include "dlopt/version.hpp"
