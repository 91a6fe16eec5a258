#pragma once
/// @file registry.hpp
/// The one list of optimizers. Kernels are instantiated, bound to Python and benchmarked by
/// iterating it: adding an optimizer means adding its header here.

#include "dlopt/optim/adadelta.hpp"
#include "dlopt/optim/adafactor.hpp"
#include "dlopt/optim/adagrad.hpp"
#include "dlopt/optim/adam.hpp"
#include "dlopt/optim/ademamix.hpp"
#include "dlopt/optim/adopt.hpp"
#include "dlopt/optim/asgd.hpp"
#include "dlopt/optim/adamax.hpp"
#include "dlopt/optim/dynamic_lr.hpp"
#include "dlopt/optim/lamb.hpp"
#include "dlopt/optim/lars.hpp"
#include "dlopt/optim/lion.hpp"
#include "dlopt/optim/muon.hpp"
#include "dlopt/optim/nadam.hpp"
#include "dlopt/optim/radam.hpp"
#include "dlopt/optim/rmsprop.hpp"
#include "dlopt/optim/rprop.hpp"
#include "dlopt/optim/schedule_free.hpp"
#include "dlopt/optim/sgd.hpp"

/// X-macro over every optimizer rule: DLOPT_FOR_EACH_RULE(X) expands X(Rule) once per rule.
#define DLOPT_FOR_EACH_RULE(X) \
  X(SGDRule)                   \
  X(AdamRule)                  \
  X(AdamWRule)                 \
  X(AdagradRule)               \
  X(RMSpropRule)               \
  X(AdadeltaRule)              \
  X(AdamaxRule)                \
  X(NAdamRule)                 \
  X(RAdamRule)                 \
  X(LionRule)                  \
  X(LAMBRule)                  \
  X(MuonRule)                  \
  X(DynamicLRRule)             \
  X(RpropRule)                 \
  X(ASGDRule)                  \
  X(ADOPTRule)                 \
  X(AdEMAMixRule)              \
  X(LARSRule)                  \
  X(ScheduleFreeSGDRule)       \
  X(ScheduleFreeAdamWRule)     \
  X(AdafactorRule)
