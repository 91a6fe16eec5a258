# dlopt::dlopt_mpi: ZeRO-1 and data-parallel gradients over MPI for C++ (dlopt/distributed/mpi.hpp).
# DLOPT_MPI: AUTO (built when MPI is found; default, OFF in the Python build, which uses mpi4py),
# ON (MPI required), OFF.

if(SKBUILD)
  set(_dlopt_mpi_default OFF)
else()
  set(_dlopt_mpi_default AUTO)
endif()
set(DLOPT_MPI ${_dlopt_mpi_default} CACHE STRING "Build dlopt::dlopt_mpi over MPI: AUTO, ON or OFF")
set_property(CACHE DLOPT_MPI PROPERTY STRINGS AUTO ON OFF)

set(DLOPT_HAS_MPI OFF)
if(DLOPT_MPI STREQUAL "ON")
  find_package(MPI REQUIRED COMPONENTS CXX)
elseif(NOT DLOPT_MPI STREQUAL "OFF")
  find_package(MPI QUIET COMPONENTS CXX)
endif()
if(MPI_CXX_FOUND AND NOT DLOPT_MPI STREQUAL "OFF")
  set(DLOPT_HAS_MPI ON)
endif()
message(STATUS "dlopt: DLOPT_MPI=${DLOPT_MPI}, dlopt::dlopt_mpi built: ${DLOPT_HAS_MPI}")

if(DLOPT_HAS_MPI)
  add_library(dlopt_mpi ${PROJECT_SOURCE_DIR}/cpp/src/mpi/collectives.cpp)
  add_library(dlopt::dlopt_mpi ALIAS dlopt_mpi)
  target_link_libraries(dlopt_mpi PUBLIC dlopt MPI::MPI_CXX)
  target_compile_options(dlopt_mpi PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra>)
  install(TARGETS dlopt_mpi EXPORT dlopt-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
  if(PROJECT_IS_TOP_LEVEL AND NOT SKBUILD AND BUILD_TESTING)
    add_subdirectory(tests/cpp/mpi)
  endif()
endif()
