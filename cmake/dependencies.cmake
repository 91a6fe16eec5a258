# Third-party dependencies: Eigen (required, from the system), OpenMP (optional), CUDA (switch).

find_package(Eigen3 3.3 CONFIG QUIET)
if(NOT TARGET Eigen3::Eigen)
  # Fallback: a bare Eigen include directory (Eigen is header-only), e.g. a copy of
  # /usr/include/eigen3 in third_party/eigen3 on a machine without libeigen3-dev.
  set(DLOPT_EIGEN_INCLUDE_DIR "" CACHE PATH "Eigen include directory (contains Eigen/Core), used when no Eigen3Config.cmake is found")
  set(_dlopt_eigen_dir "${DLOPT_EIGEN_INCLUDE_DIR}")
  if(NOT _dlopt_eigen_dir AND EXISTS "${PROJECT_SOURCE_DIR}/third_party/eigen3/Eigen/Core")
    set(_dlopt_eigen_dir "${PROJECT_SOURCE_DIR}/third_party/eigen3")
  endif()
  if(_dlopt_eigen_dir AND EXISTS "${_dlopt_eigen_dir}/Eigen/Core")
    add_library(Eigen3::Eigen INTERFACE IMPORTED GLOBAL)
    set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dlopt_eigen_dir}")
    set(DLOPT_EIGEN_FALLBACK ON)
    message(STATUS "dlopt: using the Eigen headers in ${_dlopt_eigen_dir} (no Eigen3Config.cmake found)")
  endif()
endif()
if(NOT TARGET Eigen3::Eigen)
  message(FATAL_ERROR
    "dlopt needs Eigen 3.3 or newer, which was not found.\n"
    "  Debian/Ubuntu: apt-get install libeigen3-dev\n"
    "  elsewhere: install Eigen and pass -DEigen3_DIR=<dir containing Eigen3Config.cmake>,\n"
    "  or -DDLOPT_EIGEN_INCLUDE_DIR=<dir containing Eigen/Core> (or copy it to third_party/eigen3)")
endif()

find_package(OpenMP COMPONENTS CXX)
if(NOT OpenMP_CXX_FOUND)
  message(WARNING "OpenMP not found: dlopt's CPU kernels will run on one thread")
endif()

# DLOPT_CUDA=ON: build the CUDA kernels (an error without nvcc); OFF: never; AUTO (the default): only when
# nvcc is found AND `nvidia-smi -L` lists a GPU, so a machine with the toolkit but no GPU (a CI runner, a
# container) gets the faster CPU-only build. CI passes ON to keep compiling the kernels.
string(TOUPPER "${DLOPT_CUDA}" DLOPT_CUDA)
if(NOT DLOPT_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DLOPT_CUDA must be AUTO, ON or OFF, got '${DLOPT_CUDA}'")
endif()
set(_dlopt_want_cuda ${DLOPT_CUDA})
if(DLOPT_CUDA STREQUAL "AUTO")
  find_program(DLOPT_NVIDIA_SMI nvidia-smi)
  set(_dlopt_gpu_list "")
  if(DLOPT_NVIDIA_SMI)
    execute_process(COMMAND "${DLOPT_NVIDIA_SMI}" -L RESULT_VARIABLE _dlopt_smi_status
                    OUTPUT_VARIABLE _dlopt_gpu_list ERROR_QUIET TIMEOUT 30)
    if(NOT _dlopt_smi_status EQUAL 0)
      set(_dlopt_gpu_list "")
    endif()
  endif()
  if(NOT _dlopt_gpu_list MATCHES "GPU [0-9]+:")
    set(_dlopt_want_cuda OFF)
    message(STATUS "dlopt: DLOPT_CUDA=AUTO and no GPU visible (nvidia-smi -L): building without CUDA "
                   "(-DDLOPT_CUDA=ON builds the kernels anyway)")
  endif()
endif()

set(DLOPT_HAS_CUDA 0)
if(NOT _dlopt_want_cuda STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(DLOPT_HAS_CUDA 1)
    message(STATUS "dlopt: building CUDA kernels for sm_${CMAKE_CUDA_ARCHITECTURES}")
  elseif(DLOPT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DLOPT_CUDA=ON but no CUDA compiler (nvcc) was found; "
                        "set CMAKE_CUDA_COMPILER or use DLOPT_CUDA=AUTO|OFF")
  else()
    message(STATUS "dlopt: nvcc not found, building without CUDA")
  endif()
endif()

# DLOPT_ONEDNN: oneDNN's bfloat16 matmul for Muon's ns_dtype="bfloat16" (core/bf16_matmul.hpp).
# AUTO (the default): used when find_package(dnnl) finds it (Debian/Ubuntu: apt-get install libdnnl-dev)
# and OpenMP is there (each tile runs on one OpenMP thread); ON: an error without it; OFF: never.
# Without it Muon's bfloat16 mode runs on Eigen's float GEMM (same roundings, slower).
# Like DLOPT_CUDA: the definition, else the DLOPT_ONEDNN environment variable, else AUTO.
set(_dlopt_onednn_default AUTO)
if(DEFINED ENV{DLOPT_ONEDNN} AND NOT "$ENV{DLOPT_ONEDNN}" STREQUAL "")
  set(_dlopt_onednn_default "$ENV{DLOPT_ONEDNN}")
endif()
set(DLOPT_ONEDNN "${_dlopt_onednn_default}" CACHE STRING "Use oneDNN for bfloat16 matrix products: AUTO (if found), ON, OFF")
set_property(CACHE DLOPT_ONEDNN PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DLOPT_ONEDNN}" _dlopt_onednn)
if(NOT _dlopt_onednn MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DLOPT_ONEDNN must be AUTO, ON or OFF, got '${DLOPT_ONEDNN}'")
endif()
set(DLOPT_HAS_ONEDNN 0)
if(NOT _dlopt_onednn STREQUAL "OFF")
  find_package(dnnl CONFIG QUIET)
  if(TARGET DNNL::dnnl AND OpenMP_CXX_FOUND)
    set(DLOPT_HAS_ONEDNN 1)
    message(STATUS "dlopt: bfloat16 products through oneDNN ${dnnl_VERSION} (${dnnl_DIR})")
  elseif(_dlopt_onednn STREQUAL "ON")
    message(FATAL_ERROR "DLOPT_ONEDNN=ON but oneDNN (find_package(dnnl CONFIG)) or OpenMP was not found; "
                        "apt-get install libdnnl-dev, set dnnl_DIR, or use DLOPT_ONEDNN=AUTO|OFF")
  else()
    message(STATUS "dlopt: oneDNN not found (apt-get install libdnnl-dev): Muon's bfloat16 products run on Eigen")
  endif()
endif()
