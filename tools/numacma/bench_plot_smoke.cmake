# ctest helper: `numacma bench alloc --quick --plot OUT` must exit 0 and write
# an SVG file. Usage: cmake -DCLI=<numacma> -DOUT=<file.svg> -P bench_plot_smoke.cmake
file(REMOVE "${OUT}")
execute_process(COMMAND "${CLI}" bench alloc --quick --peer glibc --plot "${OUT}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "numacma bench alloc --plot exited ${rc}: ${err}")
endif()
if(NOT EXISTS "${OUT}")
  message(FATAL_ERROR "--plot did not write ${OUT}")
endif()
file(READ "${OUT}" svg)
if(NOT svg MATCHES "^<svg" OR NOT svg MATCHES "</svg>" OR NOT svg MATCHES "numacma")
  message(FATAL_ERROR "${OUT} is not the expected SVG chart")
endif()
