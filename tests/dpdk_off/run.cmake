# tests/dpdk_off/run.cmake — the project configured with -DNUMACMA_DPDK=OFF,
# as a machine without DPDK would have it (issue 21: "DPDK absent at build
# time: the library is simply not built; the rest of numacma is unchanged"):
#   - configuring succeeds and says numacma_dpdk is not built;
#   - no numacma_dpdk target, no dpdk_* unit test, no dpdk guest is there;
#   - the rest is: the library, the CLI, the other unit tests and guests.
# Configuring only (seconds): the one source that compiles differently
# without DPDK (bench/lib/dpdk_peer.cpp without NUMACMA_HAVE_DPDK) is
# compiled by every build already, for the guests' CLI (numacma_bench_nodpdk).
#   cmake -DSRC=<source> -DWORK=<empty dir> -DGEN=<generator> -P run.cmake
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK} -G ${GEN} -DNUMACMA_DPDK=OFF
                        -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring with -DNUMACMA_DPDK=OFF failed (${rc}):\n${out}\n${err}")
endif()
if(NOT out MATCHES "numacma_dpdk: libdpdk not found \\(or NUMACMA_DPDK=OFF\\), not built")
  message(FATAL_ERROR "the configure output does not say numacma_dpdk is not built:\n${out}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK} --target help
                RESULT_VARIABLE rc OUTPUT_VARIABLE targets ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "listing the targets failed: ${err}")
endif()
foreach(gone numacma_dpdk numacma_dpdk_static numacma_dpdkcheck dpdk_register_test)
  if(targets MATCHES "(^|[\n :.])${gone}[:\n ]")
    message(FATAL_ERROR "-DNUMACMA_DPDK=OFF still has the target ${gone}")
  endif()
endforeach()
foreach(kept numacma numacma_static numacma_cli vfio_container_noiommu_test numacma_guest_cli)
  if(NOT targets MATCHES "(^|[\n :.])${kept}[:\n ]")
    message(FATAL_ERROR "-DNUMACMA_DPDK=OFF lost the target ${kept}:\n${targets}")
  endif()
endforeach()

# The tests registered (gtest's discovered ones appear as their executables' include files).
file(GLOB_RECURSE testfiles ${WORK}/CTestTestfile.cmake)
set(registered "")
foreach(f IN LISTS testfiles)
  file(READ ${f} text)
  string(APPEND registered "${text}")
endforeach()
foreach(gone "vm_dpdk[0-9a-z_]*" "/dpdk_[a-z_]*_test")
  if(registered MATCHES "${gone}")
    message(FATAL_ERROR "-DNUMACMA_DPDK=OFF still registers ${CMAKE_MATCH_0}")
  endif()
endforeach()
foreach(kept "vm_vfio2_boot" "vm_noiommu2_boot" "/vfio_container_noiommu_test" "docs_examples")
  if(NOT registered MATCHES "${kept}")
    message(FATAL_ERROR "-DNUMACMA_DPDK=OFF no longer registers ${kept}")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
message(STATUS "-DNUMACMA_DPDK=OFF: numacma_dpdk, its tests and the dpdk guests left out; the rest there")
