"""Every explicit Runge-Kutta tableau of tfnode, as data, side by side."""

from tfnode.solvers.tableau import ButcherTableau

__all__ = [
    "BOSH3",
    "DOPRI5",
    "EULER",
    "FEHLBERG2",
    "HEUN",
    "MIDPOINT",
    "RK4",
    "RK38",
    "TABLEAUS",
    "TSIT5",
]

EULER = ButcherTableau(
    name="euler",
    order=1,
    c=(0.0,),
    a=((),),
    b=(1.0,),
    source="Euler (1768), forward Euler method.",
)

MIDPOINT = ButcherTableau(
    name="midpoint",
    order=2,
    c=(0.0, 1 / 2),
    a=((), (1 / 2,)),
    b=(0.0, 1.0),
    source="Explicit midpoint rule (Runge 1895); ANODE's RK2.",
)

HEUN = ButcherTableau(
    name="heun",
    order=2,
    c=(0.0, 1.0),
    a=((), (1.0,)),
    b=(1 / 2, 1 / 2),
    source="Heun's method (explicit trapezoidal rule); Sander et al. 2022.",
)

RK4 = ButcherTableau(
    name="rk4",
    order=4,
    c=(0.0, 1 / 2, 1 / 2, 1.0),
    a=((), (1 / 2,), (0.0, 1 / 2), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    source="Classic Runge-Kutta method (Kutta 1901); ANODE's RK4.",
)

RK38 = ButcherTableau(
    name="rk38",
    order=4,
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    source="Kutta's 3/8 rule (Kutta 1901); torchdiffeq's `rk4`.",
)

BOSH3 = ButcherTableau(
    name="bosh3",
    order=3,
    c=(0.0, 1 / 2, 3 / 4, 1.0),
    a=((), (1 / 2,), (0.0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)),
    b=(2 / 9, 1 / 3, 4 / 9, 0.0),
    b_error=(2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8),
    embedded_order=2,
    source="Bogacki & Shampine, A 3(2) pair of Runge-Kutta formulas, "
    "Appl. Math. Lett. 2(4), 1989.",
)

FEHLBERG2 = ButcherTableau(
    name="fehlberg2",
    order=2,
    c=(0.0, 1 / 2, 1.0),
    a=((), (1 / 2,), (1 / 256, 255 / 256)),
    b=(1 / 512, 255 / 256, 1 / 512),
    b_error=(-1 / 512, 0.0, 1 / 512),
    embedded_order=1,
    source="Fehlberg, Low-order classical Runge-Kutta formulas with "
    "stepsize control, NASA TR R-315, 1969 (RKF1(2)).",
)

DOPRI5 = ButcherTableau(
    name="dopri5",
    order=5,
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    b_error=(
        35 / 384 - 5179 / 57600,
        0.0,
        500 / 1113 - 7571 / 16695,
        125 / 192 - 393 / 640,
        -2187 / 6784 + 92097 / 339200,
        11 / 84 - 187 / 2100,
        -1 / 40,
    ),
    embedded_order=4,
    source="Dormand & Prince, A family of embedded Runge-Kutta formulae, "
    "J. Comput. Appl. Math. 6(1), 1980. Dense output: the continuous "
    "extension of Hairer, Norsett & Wanner (1993), Sec. II.6 (Shampine's "
    "4th-order interpolant), expanded in powers of theta.",
    dense=(
        (1.0, -8048581381 / 2820520608, 8663915743 / 2820520608,
         -12715105075 / 11282082432),
        (0.0, 0.0, 0.0, 0.0),
        (0.0, 131558114200 / 32700410799, -68118460800 / 10900136933,
         87487479700 / 32700410799),
        (0.0, -1754552775 / 470086768, 14199869525 / 1410260304,
         -10690763975 / 1880347072),
        (0.0, 127303824393 / 49829197408, -318862633887 / 49829197408,
         701980252875 / 199316789632),
        (0.0, -282668133 / 205662961, 2019193451 / 616988883,
         -1453857185 / 822651844),
        (0.0, 40617522 / 29380423, -110615467 / 29380423,
         69997945 / 29380423),
    ),
)

TSIT5 = ButcherTableau(
    name="tsit5",
    order=5,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=(
        (),
        (0.161,),
        (-0.008480655492356989, 0.335480655492357),
        (2.897153057105493, -6.359448489975075, 4.3622954328695815),
        (
            5.325864828439257,
            -11.748883564062828,
            7.4955393428898365,
            -0.09249506636175525,
        ),
        (
            5.86145544294642,
            -12.92096931784711,
            8.159367898576159,
            -0.071584973281401,
            -0.028269050394068383,
        ),
        (
            0.09646076681806523,
            0.01,
            0.4798896504144996,
            1.379008574103742,
            -3.290069515436081,
            2.324710524099774,
        ),
    ),
    b=(
        0.09646076681806523,
        0.01,
        0.4798896504144996,
        1.379008574103742,
        -3.290069515436081,
        2.324710524099774,
        0.0,
    ),
    b_error=(
        -0.00178001105222577714,
        -0.0008164344596567469,
        0.007880878010261995,
        -0.1447110071732629,
        0.5823571654525552,
        -0.45808210592918697,
        1 / 66,
    ),
    embedded_order=4,
    source="Tsitouras, Runge-Kutta pairs of order 5(4) satisfying only the "
    "first column simplifying assumption, Comput. Math. Appl. 62(2), 2011; "
    "dense output: its continuous extension (ibid., given factored there), "
    "expanded in powers of theta.",
    dense=(
        (1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216),
        (0.0, 0.1317, -0.2234, 0.1017),
        (0.0, 3.930296236894751, -5.941033872131505, 2.490627285651253),
        (0.0, -12.411077166933676, 30.338188630282318, -16.548102889244902),
        (0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928),
        (0.0, -27.896526289197286, 65.09189467479368, -34.87065786149661),
        (0.0, 1.5, -4.0, 2.5),
    ),
)

TABLEAUS = {
    t.name: t
    for t in (EULER, MIDPOINT, HEUN, RK4, RK38, BOSH3, FEHLBERG2, DOPRI5, TSIT5)
}
