# `cmake --install` produces a relocatable package: find_package(dlopt CONFIG) -> dlopt::dlopt.

include(CMakePackageConfigHelpers)

set(DLOPT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dlopt)

install(TARGETS dlopt dlopt_headers EXPORT dlopt-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY cpp/include/dlopt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/include/dlopt/version.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dlopt COMPONENT dev)
install(EXPORT dlopt-targets NAMESPACE dlopt:: DESTINATION ${DLOPT_CMAKE_DIR} COMPONENT dev)

configure_package_config_file(cmake/dlopt-config.cmake.in
  ${PROJECT_BINARY_DIR}/dlopt-config.cmake INSTALL_DESTINATION ${DLOPT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dlopt-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dlopt-config.cmake ${PROJECT_BINARY_DIR}/dlopt-config-version.cmake
  DESTINATION ${DLOPT_CMAKE_DIR} COMPONENT dev)
