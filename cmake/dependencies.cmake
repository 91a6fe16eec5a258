# Third-party dependencies: Eigen (required, from the system), OpenMP (optional), CUDA (switch).

find_package(Eigen3 3.3 CONFIG QUIET)
if(NOT TARGET Eigen3::Eigen)
  message(FATAL_ERROR
    "dlopt needs Eigen 3.3 or newer, which was not found.\n"
    "  Debian/Ubuntu: apt-get install libeigen3-dev\n"
    "  elsewhere: install Eigen and pass -DEigen3_DIR=<dir containing Eigen3Config.cmake>")
endif()

find_package(OpenMP COMPONENTS CXX)
if(NOT OpenMP_CXX_FOUND)
  message(WARNING "OpenMP not found: dlopt's CPU kernels will run on one thread")
endif()

set(DLOPT_HAS_CUDA 0)
if(NOT DLOPT_CUDA STREQUAL "OFF")
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
